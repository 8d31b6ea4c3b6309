"""Where a run trains: this host's devices (MirroredStrategy over several GPUs or logical CPUs, the default
strategy on one device), or the hosts of ``TF_CONFIG`` (MultiWorkerMirroredStrategy)."""
import contextlib
import functools
import json
import os
from dataclasses import dataclass

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker run."""
    workers: int  # the tasks of the cluster, chief included: they all train
    task_type: str  # "chief" or "worker"
    index: int
    has_chief: bool = False

    @property
    def chief(self):
        """The task that keeps the run's files: the "chief" task if the cluster has one, else worker 0."""
        return self.task_type == "chief" or (self.index == 0 and not self.has_chief)


def read_cluster(environ=os.environ):
    """The ``TF_CONFIG`` of a multi-worker run, checked: ValueError (one line) if it is missing or malformed."""
    def bad(why):
        return ValueError(f"--strategy multi-worker: {why}; each worker needs TF_CONFIG like {TF_CONFIG_EXAMPLE} "
                          "with its own task index")

    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        raise bad("TF_CONFIG is not set")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(f"TF_CONFIG is not JSON ({exc.msg} at character {exc.pos})") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise bad("TF_CONFIG has no \"cluster\" object")
    for kind, addresses in cluster.items():
        if kind not in ("chief", "worker"):
            raise bad(f"TF_CONFIG's cluster has a {kind!r} job; a multi-worker run has \"chief\" and \"worker\" only")
        if not isinstance(addresses, list) or not addresses or not all(_is_address(a) for a in addresses):
            raise bad(f"TF_CONFIG's cluster {kind!r} must be a list of \"host:port\" addresses, got {addresses!r}")
    if len(cluster.get("chief", [])) > 1:
        raise bad("TF_CONFIG's cluster has more than one chief")
    task = spec.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise bad(f"TF_CONFIG's \"task\" must name a job of the cluster ({', '.join(cluster)}), got {task!r}")
    index = task.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task["type"]]):
        raise bad(f"TF_CONFIG's task index must be 0..{len(cluster[task['type']]) - 1} for its "
                  f"{len(cluster[task['type']])} {task['type']} address(es), got {index!r}")
    return Cluster(sum(len(a) for a in cluster.values()), task["type"], index, has_chief="chief" in cluster)


def _is_address(text):
    host, _, port = str(text).rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _visible_gpus():
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))  # lists without initialising TensorFlow's devices


def prepare_devices(devices, batch_size, strategy="mirrored", environ=os.environ):
    """The run's strategy (``configure_devices``), made first thing: checking the images runs TensorFlow, after
    which logical CPU devices and MultiWorkerMirroredStrategy can no longer be set up. Refuses, before any work,
    more devices than this host has (its GPUs, else its CPU cores as logical CPU devices) or a global batch that
    does not split evenly over the replicas (a replica with no images fails inside ``fit``, minutes later)."""
    gpus = _visible_gpus()
    if strategy == "multi-worker":
        workers = read_cluster(environ).workers
        replicas, what = workers * max(1, gpus), f"{workers} workers x {max(1, gpus)} device(s)"
    else:
        available = gpus if gpus else (os.cpu_count() or 1)
        if devices is not None and devices > available:
            raise ValueError(f"--devices {devices}: this host has only {available} "
                             f"{'GPUs' if gpus else 'CPU cores (no GPU)'}; give --devices {available} or fewer")
        replicas = devices if devices is not None else (gpus if gpus > 1 else 1)
        what = f"--devices {replicas}"
    if batch_size % replicas:
        raise ValueError(f"--batch-size {batch_size}: must be a multiple of {what} (each replica takes an equal "
                         f"share of every batch); give e.g. --batch-size {max(1, batch_size // replicas) * replicas}")
    return configure_devices(devices, strategy)


@functools.cache  # one per process: devices are set up once, before TensorFlow initialises them
def configure_devices(devices, strategy="mirrored"):
    """A distribution strategy. ``"multi-worker"``: MultiWorkerMirroredStrategy over the hosts of TF_CONFIG (every
    GPU of each, or its CPU), created before TensorFlow initialises its devices. ``"mirrored"``: MirroredStrategy
    over ``devices`` GPUs, or over ``devices`` logical CPUs when there is no GPU (must run before TensorFlow
    initialises its devices); the default strategy for one device."""
    import tensorflow as tf

    if strategy == "multi-worker":
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError:
            raise ValueError("--strategy multi-worker: TensorFlow is already initialised in this process; "
                             "start a new process") from None
    gpus = tf.config.list_physical_devices("GPU")
    if devices is None:
        devices = len(gpus) if len(gpus) > 1 else 1
    if devices == 1:
        return tf.distribute.get_strategy()
    if gpus:
        if devices > len(gpus):
            raise ValueError(f"--devices {devices}: only {len(gpus)} GPUs are visible")
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(devices)])
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) < devices:
            raise ValueError(f"--devices {devices}: TensorFlow is already initialised with "
                             f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s); start a new process") from None
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(devices)])


@contextlib.contextmanager
def fitting(model, strategy):
    """The block in which ``model.fit`` runs under ``strategy``.

    Keras 3's ``fit`` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585, still so in 3.15): before
    the first step it averages a sample batch across workers with ``strategy.reduce`` (which takes no nested
    batch), and after every step it reduces the scalar logs along an axis they do not have. Neither reduction is
    needed: the sample batch serves only to build the compiled state, which is then built when the step is
    traced (in the strategy's scope), and the logs are the loss and metric trackers, mirrored variables summed
    over every replica of every worker, so this worker's copy is the global figure."""
    from keras.src.backend.tensorflow import trainer

    if not trainer._collective_all_reduce_multi_worker(strategy):
        yield
        return
    saved = model._distribute_strategy, trainer._collective_all_reduce_multi_worker
    model._distribute_strategy = None
    trainer._collective_all_reduce_multi_worker = lambda strategy: False
    try:
        with strategy.scope():
            yield
    finally:
        model._distribute_strategy, trainer._collective_all_reduce_multi_worker = saved
