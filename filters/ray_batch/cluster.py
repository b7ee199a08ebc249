"""The Ray side: joining or starting a cluster, and starting the workers."""
from __future__ import annotations

import logging
from typing import Any

from ..pyav import TranscodeError
from .tasks import WorkerInfo
from .worker import SegmentWorker

MAX_RESTARTS = 3  # per worker
RAY_MISSING = "Ray is not installed: pip install 'idsa-plugin[ray]' (or pip install 'ray>=2.9')"


def connect(address: str | None, cpus: int) -> bool:
    """Join the cluster at ``address``, or start a local Ray runtime; False when Ray was running already."""
    import ray

    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, **quiet)
    return True


def worker_options(workers: int | None, threads: int, device: str | None) -> tuple[int, dict[str, Any]]:
    """How many workers, and each one's Ray resources: one GPU (where the cluster has them and
    ``device`` allows) or ``threads`` CPUs."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    use_gpu = gpus > 0 and (device is None or device.startswith("cuda"))
    if device is not None and device.startswith("cuda") and not gpus:
        raise TranscodeError(f"--device {device}, but the Ray cluster has no GPU")
    room = min(gpus, cpus // threads) if use_gpu else cpus // threads
    count = workers or room
    if count < 1 or count > room:
        raise TranscodeError(f"the Ray cluster ({cpus} CPUs, {gpus} GPUs) has room for {room} workers "
                             f"({'1 GPU' if use_gpu else f'{threads} CPUs'} each), not {count}")
    return count, {"num_cpus": threads, "num_gpus": 1 if use_gpu else 0, "max_restarts": MAX_RESTARTS,
                   "max_task_retries": 0, "scheduling_strategy": "SPREAD"}


def start_workers(workers: int | None, threads: int, model: Any, engine: dict[str, Any]) -> tuple[list[Any], list[WorkerInfo]]:
    """Start the actors (``engine``: the Engine keywords) and wait until each has loaded the model."""
    import ray

    count, resources = worker_options(workers, threads, engine["options"].device)
    worker_class = ray.remote(SegmentWorker)
    actors = [worker_class.options(**resources).remote(model, engine, threads) for _ in range(count)]
    try:
        infos = ray.get([a.info.remote() for a in actors])
        broken = next((info for info in infos if info.error), None)
        if broken is not None:
            raise TranscodeError(f"a worker (pid {broken.pid} on {broken.host}) could not load the model: {broken.error}")
    except BaseException:
        for actor in actors:
            ray.kill(actor)
        raise
    return actors, infos
