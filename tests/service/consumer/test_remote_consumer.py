"""A consumer on another host: it sees the queue through another mount and none of the writer's file
notifications, and picks jobs up through ``syntx.job.created`` — or through its rescan when that is lost.

The other host is a second mount of the queue folder (``mount --bind``; a real NFS mount where the
kernel can serve one on loopback). Inotify would still report the writer's files through a bind mount
(it watches inodes), so the consumer's watcher is replaced by one that reports nothing — what a consumer
on another host sees. Everything else is real: the consumer, nats-server, the files, the renames.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import services.consumer.app as consumer_app
from shared.messaging import JobCreated, JobScored, subjects
from shared.queue import INCOMING, PROCESSING, FileQueue, Intake, JobMeta, scan_jobs
from tests.support.consumers import consumer_with_events, job_ids, make_settings, result
from tests.support.harness import count
from tests.support.natsserver import NatsServer

pytestmark = pytest.mark.timeout(60)

PROMPT = "Erkläre, wie Katzen ihre Umgebung wahrnehmen."


def _nfs_problem() -> str | None:
    """Why this machine cannot serve NFS on loopback, or None if it can."""
    kinds = Path("/proc/filesystems").read_text(encoding="utf-8").split()
    missing = [kind for kind in ("nfs", "nfsd") if kind not in kinds]
    if missing:
        return f"the kernel has no {' and no '.join(missing)} filesystem (NFS cannot be served or mounted)"
    if shutil.which("exportfs") is None:
        return "nfs-kernel-server is not installed (no exportfs)"
    return None


def _mount(*args: str) -> str | None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else (done.stderr.strip() or f"mount exited {done.returncode}")


@pytest.fixture
def second_mount(tmp_path: Path) -> Iterator[tuple[FileQueue, Path]]:
    """The writer's queue folder, and a second mount of it where the consumer's data dir expects it."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a second mount of the queue cannot be made here")
    served = tmp_path / "server" / "queue"
    FileQueue(served).ensure()
    seen_as = tmp_path / "data" / "queue"
    seen_as.mkdir(parents=True)
    problem = _mount("--bind", str(served), str(seen_as))
    if problem is not None:
        pytest.skip(f"mount --bind is not permitted here: {problem}")
    try:
        yield FileQueue(served), seen_as
    finally:
        subprocess.run(["umount", str(seen_as)], check=False)


@pytest.fixture
def blind_watcher(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[], None]]:
    """The consumer's doorbell never rings (the writer is on another host)."""
    rings: list[Callable[[], None]] = []

    @asynccontextmanager
    async def silent(_folder: object, ring: Callable[[], None], **_: object) -> AsyncIterator[None]:
        rings.append(ring)
        yield

    monkeypatch.setattr(consumer_app, "arrivals", silent)
    return rings


async def test_a_remote_consumer_claims_the_job_named_in_job_created_at_once(
    tmp_path: Path,
    nats_server: NatsServer,
    second_mount: tuple[FileQueue, Path],
    blind_watcher: list[Callable[[], None]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The named job is claimed by one rename: no scan of incoming/ (a large folder on a slow mount)."""
    writer, seen_as = second_mount
    scans: list[Path] = []
    first_drain = asyncio.Event()

    def counted_scan(folder: Path) -> Intake:
        scans.append(folder)
        if folder.name == INCOMING:
            first_drain.set()
        return scan_jobs(folder)

    monkeypatch.setattr(consumer_app, "scan_jobs", counted_scan)
    settings = make_settings(tmp_path, nats_server, watch=True, watch_polling=True, rescan_s=300.0)
    async with consumer_with_events(settings) as (nc, events, _stop):
        await asyncio.wait_for(first_drain.wait(), timeout=10)  # the start-up pass found an empty queue
        scanned_at_start = scans.count(seen_as / INCOMING)
        for bad in ("../outside", ".hidden", "x" * 300, "no-such-job"):  # ignored, nothing else happens
            body = {"kind": "job.created", "job_id": bad}  # as any publisher may send it: not our model's
            await nc.publish(subjects.JOB_CREATED, json.dumps(body).encode())
        job_id = writer.add_job(PROMPT, JobMeta(topic="Katzen"))
        await nc.publish(subjects.JOB_CREATED, JobCreated(job_id=job_id).model_dump_json().encode())
        await events.wait_for(count(JobScored, 1), within_s=10)  # the rescan would come after 300 s
        assert scans.count(seen_as / INCOMING) == scanned_at_start
    assert events.of(JobScored)[0].job_id == job_id
    assert result(writer, job_id)["status"] in ("passed", "rejected")
    assert not job_ids(writer, INCOMING) and not job_ids(writer, PROCESSING)
    assert blind_watcher, "the consumer watched its folder"


async def test_a_remote_consumer_finds_an_unannounced_job_by_its_rescan(
    tmp_path: Path,
    nats_server: NatsServer,
    second_mount: tuple[FileQueue, Path],
    blind_watcher: list[Callable[[], None]],
) -> None:
    writer, _ = second_mount
    settings = make_settings(tmp_path, nats_server, watch=True, watch_polling=True, rescan_s=0.2)
    async with consumer_with_events(settings) as (_nc, events, _stop):
        job_id = writer.add_job(PROMPT, JobMeta(topic="Katzen"))  # no job.created: the event was lost
        await events.wait_for(count(JobScored, 1), within_s=10)
    assert events.of(JobScored)[0].job_id == job_id
    assert writer.result_path(job_id) is not None


async def test_two_consumers_sharing_a_queue_file_one_result_per_announced_job(
    tmp_path: Path,
    nats_server: NatsServer,
    second_mount: tuple[FileQueue, Path],
    blind_watcher: list[Callable[[], None]],
) -> None:
    """Both hear every job.created; the claim is a rename, so each job is processed once."""
    writer, _ = second_mount
    settings = make_settings(tmp_path, nats_server, watch=True, watch_polling=True, rescan_s=300.0)
    async with consumer_with_events(settings) as (nc, events, _stop):
        twin = make_settings(tmp_path, nats_server, watch=True, watch_polling=True, rescan_s=300.0)
        async with consumer_with_events(twin) as (_nc2, _events2, _stop2):
            ids = [writer.add_job(f"{PROMPT} ({n})", JobMeta(topic="Katzen")) for n in range(6)]
            for job_id in ids:
                await nc.publish(subjects.JOB_CREATED, JobCreated(job_id=job_id).model_dump_json().encode())
            await events.wait_for(count(JobScored, len(ids)), within_s=15)
    assert sorted(event.job_id for event in events.of(JobScored)) == sorted(ids)
    assert all(writer.result_path(job_id) is not None for job_id in ids)


def test_nfs_on_loopback(tmp_path: Path) -> None:
    """Runs the pickup over a real NFS mount where the kernel can serve one on loopback."""
    problem = _nfs_problem()
    if problem is not None:
        pytest.skip(f"no NFS here: {problem}; the second-mount tests above stand in for it")
    served = tmp_path / "export"
    mounted = tmp_path / "mnt"
    FileQueue(served).ensure()
    mounted.mkdir()
    subprocess.run(["exportfs", "-o", "rw,no_root_squash,insecure", f"127.0.0.1:{served}"], check=True)
    try:
        failed = _mount("-t", "nfs", "-o", "vers=3,nolock", f"127.0.0.1:{served}", str(mounted))
        if failed is not None:
            pytest.skip(f"mounting the loopback NFS export failed: {failed}")
        try:
            remote, local = FileQueue(mounted), FileQueue(served)
            job_id = local.add_job(PROMPT, JobMeta())
            assert sorted(remote.job_ids(INCOMING)) == [job_id]
            before = remote.file_clock()
            assert abs(before - local.file_clock()) < 1.0  # both read the server's clock
        finally:
            subprocess.run(["umount", str(mounted)], check=False)
    finally:
        subprocess.run(["exportfs", "-u", f"127.0.0.1:{served}"], check=False)
