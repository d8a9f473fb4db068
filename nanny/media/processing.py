"""Image work off the event loop, with bounded concurrency.

Two bounds, both per process. `jobs` images are decoded and encoded at once, in an executor of as
many workers; and at most `admitted` uploads are read and held in memory at once (each up to
10 MiB, and its decoded pixels): a burst beyond that waits, before its body is read, for a
place. Either way a burst queues: the event loop, and with it chat and REST, never waits for
an image."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

from nanny.media.images import Processed, process_image

# How many uploads may wait, read, for each image being worked on.
ADMITTED_PER_JOB = 4


# Image workers run this much nicer than the event loops: when the cores are busy, the kernel
# gives them to chat and REST first, and the uploads wait instead.
WORKER_NICENESS = 10


def lower_priority() -> None:
    """Make the calling thread (a worker process's, or a pool thread's: on Linux each thread has
    its own niceness) yield the CPU to the event loops."""
    # A platform without per-thread niceness keeps the default priority.
    with contextlib.suppress(AttributeError, OSError):
        me = threading.get_native_id()
        niceness = min(19, os.getpriority(os.PRIO_PROCESS, me) + WORKER_NICENESS)
        os.setpriority(os.PRIO_PROCESS, me, niceness)


def make_executor(kind: str, workers: int) -> Executor:
    """`thread`: Pillow releases the GIL while it decodes, resizes and encodes, so threads run
    the work in parallel with the loop. `process`: worker processes, which share nothing with
    the loop but cost their memory and a copy of each image both ways."""
    if kind == "process":
        # forkserver: a fresh child, not a fork of a process running an event loop and threads.
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=lower_priority
        )
    return ThreadPoolExecutor(
        max_workers=workers, thread_name_prefix="nanny-image", initializer=lower_priority
    )


class ImageProcessor:
    def __init__(self, executor: Executor, jobs: int):
        self._executor = executor
        self._jobs = asyncio.Semaphore(jobs)
        self._admitted = asyncio.Semaphore(jobs * ADMITTED_PER_JOB)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Held while an upload is read, worked on and stored."""
        async with self._admitted:
            yield

    async def process(self, data: bytes) -> Processed:
        """nanny.media.images.process_image, in the executor; raises its ImageRefused."""
        async with self._jobs:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, process_image, data)
