"""Provision benchmark subscribers into a SQLite subscriber store (what ``twistd sprout
--subscriber-store sqlite:FILE`` and ``twistd homestead`` serve), and write the SIPp injection
file answering their digest challenges.

usage: python -m benchmarks.provision_users DB CSV [COUNT (1000)] [DOMAIN (localhost)]

Users are ``regNNNNN@DOMAIN`` (the names of ``../shared/bench/users.csv``), password
``pwNNNNN``, each with one public identity ``sip:regNNNNN@DOMAIN``.
"""

from __future__ import annotations

import sys

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorCore

from clearwater.homestead.provisioning import provision_subscriber
from clearwater.stores.sqlite import SqliteSubscriberStore


async def _provision(reactor: IReactorCore, db: str, count: int, domain: str) -> None:
    store = SqliteSubscriberStore(reactor, db)  # type: ignore[arg-type]
    try:
        for n in range(count):
            user = f"reg{n:05}"
            await provision_subscriber(
                store, f"{user}@{domain}", [f"sip:{user}@{domain}"], realm=domain,
                password=f"pw{n:05}",
            )  # fmt: skip
    finally:
        await store.close()


def main(
    reactor: IReactorCore, db: str, csv: str, count: str = "1000", domain: str = "localhost"
) -> defer.Deferred[None]:
    with open(csv, "w", encoding="ascii") as out:
        out.write("SEQUENTIAL\n")
        for n in range(int(count)):
            user = f"reg{n:05}"
            auth = f"[authentication username={user}@{domain} password=pw{n:05}]"
            out.write(f"{user};{domain};{auth}\n")
    return defer.Deferred.fromCoroutine(_provision(reactor, db, int(count), domain))


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
