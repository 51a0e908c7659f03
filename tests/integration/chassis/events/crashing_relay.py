"""A relay process that is killed (SIGKILL) after Pub/Sub accepted its batch, before marking it.

Run as a fork server so each crash costs a fork, not an interpreter start: it imports the
relay once, then for every `crash` line on stdin forks a child that connects, claims a batch,
publishes it and kills itself from the relay's after-publish hook. The parent prints each
child's exit code (-9 when the crash happened where intended). Nothing touches gRPC or the
database before the fork; each child builds its own clients.
"""

import asyncio
import os
import signal
import sys

from services.chassis.db.database import Database
from services.chassis.events.relay import Relay

NOT_CRASHED = 3


async def publish_then_die(database_url, topic_path, batch_size):
    async def die(records):
        os.kill(os.getpid(), signal.SIGKILL)

    database = Database.connect(database_url, pool_size=1, max_overflow=0)
    relay = Relay(database, topic_path=topic_path, batch_size=batch_size, after_publish=die)
    await relay.publish_once()


def main():
    database_url, topic_path, batch_size = os.environ["RELAY_DATABASE_URL"], *sys.argv[1:3]
    for line in sys.stdin:
        if line.strip() != "crash":
            continue
        pid = os.fork()
        if pid == 0:
            try:
                asyncio.run(publish_then_die(database_url, topic_path, int(batch_size)))
            finally:
                os._exit(NOT_CRASHED)
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"{os.waitstatus_to_exitcode(status)}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
