"""``twistd restund``: a STUN/TURN server (RFC 8489, RFC 8656; spec §5, issue #7)."""
