"""``twistd sprout``: the S-CSCF, I-CSCF, BGCF and built-in application servers (spec §2.9, §8)."""
