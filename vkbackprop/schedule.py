"""Recording dispatches into one kp sequence, with a barrier exactly where a hazard exists.

Kompute orders nothing between two dispatches. The `HazardTracker` remembers, per buffer, shader
writes and reads that no barrier has ordered yet, and before each dispatch returns the buffers on
which it would race with earlier work:

- read-after-write:  the dispatch reads a buffer with an unordered earlier write;
- write-after-write: it writes a buffer with an unordered earlier write;
- write-after-read:  it writes a buffer that an earlier dispatch reads, with no barrier since.

A barrier (compute -> compute stages, memory dependencies on its buffers) orders *every* earlier
dispatch before every later one: its execution dependency is not limited to its buffers, and a
write after a read needs nothing more (the Vulkan spec: write-after-read hazards can be solved with
just an execution dependency; read-after-write and write-after-write need memory dependencies).
So a barrier settles all unordered reads, and only its own buffers' writes.

Independent dispatches (a layer's weight and input gradients, say) get no barrier between them.
Transfers are ordered by kp itself (each dispatch waits for earlier uploads; each download waits for
earlier shader writes), so only compute -> compute hazards are tracked here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class HazardTracker:
    unordered_writes: set = field(default_factory=set)
    unordered_reads: set = field(default_factory=set)

    def hazards(self, reads, writes) -> set:
        reads, writes = set(reads), set(writes)
        return ((reads | writes) & self.unordered_writes) | (writes & self.unordered_reads)

    def ordered(self, buffers) -> None:
        """A barrier on these buffers: their writes are visible to later dispatches, and every earlier
        read (of any buffer) comes before every later write."""
        self.unordered_writes -= set(buffers)
        self.unordered_reads.clear()

    def accessed(self, reads, writes) -> None:
        self.unordered_reads |= set(reads)
        self.unordered_writes |= set(writes)


class Recorder:
    """Builds one sequence: uploads, dispatches (with hazard barriers) and downloads.

    `log` lists what was recorded, in order: ("upload" | "barrier" | "download", (buffers...)) and
    ("dispatch", Dispatch), for tests and for `describe()`.
    """

    def __init__(self, device):
        self.device = device
        self.sequence = device.sequence()
        self.tracker = HazardTracker()
        self.log: list[tuple[str, object]] = []

    def upload(self, buffers) -> None:
        buffers = list(buffers)
        if self.tracker.hazards([], buffers):
            raise RuntimeError("an upload may not overwrite a buffer that shaders in this sequence use; "
                               "upload at the start of the sequence")
        self.sequence.upload(buffers)
        self.log.append(("upload", tuple(buffers)))

    def barrier(self, buffers) -> None:
        """An explicit compute -> compute barrier on `buffers` (e.g. ordering a sequence after work
        an earlier sequence did on them)."""
        ordered = sorted(set(buffers), key=lambda b: b.name)
        self.sequence.barrier(ordered)
        self.tracker.ordered(ordered)
        self.log.append(("barrier", tuple(ordered)))

    def dispatch(self, dispatch) -> None:
        hazards = self.tracker.hazards(dispatch.reads, dispatch.writes)
        if hazards:
            ordered = sorted(hazards, key=lambda b: b.name)
            self.sequence.barrier(ordered)
            self.tracker.ordered(ordered)
            self.log.append(("barrier", tuple(ordered)))
        self.sequence.dispatch(dispatch)
        self.tracker.accessed(dispatch.reads, dispatch.writes)
        self.log.append(("dispatch", dispatch))

    def download(self, buffers) -> None:
        buffers = list(buffers)
        self.sequence.download(buffers)
        self.log.append(("download", tuple(buffers)))

    def describe(self) -> str:
        """One line per recorded command, e.g. 'barrier   0.output'."""
        return "\n".join(f"{kind:9s} {command_label(what)}" for kind, what in self.log)


def command_label(what) -> str:
    """What a logged command works on: a dispatch's name, or the names of the buffers it moves or orders."""
    return ", ".join(b.name for b in what) if isinstance(what, tuple) else what.name
