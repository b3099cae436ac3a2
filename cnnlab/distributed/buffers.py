"""Many arrays, few messages: arrays packed by dtype into flat buffers for collectives.

Each MPI call costs a latency (microseconds on one machine, tens of them over a network)
whatever its size, so gradients travel as one flat buffer per dtype -- split only into
chunks of ``max_elements`` -- instead of one call per parameter array (the approach of
Horovod's tensor fusion).

    bufs = FlatBuffers([g.shape ...], [g.dtype ...])
    bufs.pack(grads)                     # copies (optionally scaled) into the buffers
    bufs.allreduce(comm)                 # in place: the elementwise sum over ranks
    bufs.unpack(grads)                   # copies back into the same arrays
"""
from __future__ import annotations

import numpy as np

#: Largest number of elements in one MPI call (256 MiB of float32): MPI counts are C ints,
#: and very large messages gain nothing.
MAX_ELEMENTS = 1 << 26


class FlatBuffers:
    """Flat buffers laid out for a fixed list of array shapes and dtypes.

    Parameters
    ----------
    shapes : list of tuples
    dtypes : list of numpy dtypes (same length); one buffer per distinct dtype, in order
        of first appearance.
    max_elements : largest chunk handed to one MPI call.
    """

    def __init__(self, shapes, dtypes, max_elements=MAX_ELEMENTS):
        if len(shapes) != len(dtypes):
            raise ValueError(f"shapes and dtypes must have the same length, got "
                             f"{len(shapes)} and {len(dtypes)}")
        self.shapes = [tuple(int(s) for s in shape) for shape in shapes]
        self.dtypes = [np.dtype(d) for d in dtypes]
        self.max_elements = int(max_elements)
        totals = {}
        self.slots = []  # per array: (dtype, offset, size)
        for shape, dtype in zip(self.shapes, self.dtypes):
            n = int(np.prod(shape, dtype=np.int64))
            offset = totals.get(dtype, 0)
            self.slots.append((dtype, offset, n))
            totals[dtype] = offset + n
        self.buffers = {d: np.zeros(n, dtype=d) for d, n in totals.items()}

    def __len__(self):
        return len(self.shapes)

    def nbytes(self):
        """Bytes that one collective over all buffers moves per rank."""
        return int(sum(b.nbytes for b in self.buffers.values()))

    def view(self, i):
        """The i-th array's place in its buffer, shaped like the array."""
        dtype, offset, n = self.slots[i]
        return self.buffers[dtype][offset:offset + n].reshape(self.shapes[i])

    def _check(self, arrays):
        if len(arrays) != len(self.shapes):
            raise ValueError(f"expected {len(self.shapes)} arrays (the layout), got "
                             f"{len(arrays)}")
        for i, a in enumerate(arrays):
            if a.shape != self.shapes[i]:
                raise ValueError(f"array {i} has shape {a.shape}, the layout expects "
                                 f"{self.shapes[i]}")

    def pack(self, arrays, scales=None):
        """Copy ``arrays`` (times ``scales[i]`` when given) into the buffers."""
        self._check(arrays)
        for i, a in enumerate(arrays):
            if scales is None or scales[i] == 1:
                np.copyto(self.view(i), a, casting="same_kind")
            elif scales[i] == 0:  # exactly nothing, even where a holds inf or NaN
                self.view(i).fill(0)
            else:
                np.multiply(a, scales[i], out=self.view(i), casting="same_kind")

    def unpack(self, arrays):
        """Copy the buffers back into ``arrays`` (in place)."""
        self._check(arrays)
        for i, a in enumerate(arrays):
            np.copyto(a, self.view(i), casting="same_kind")

    def chunks(self):
        """Every buffer cut into pieces of at most ``max_elements`` (views)."""
        for buf in self.buffers.values():
            for start in range(0, buf.size, self.max_elements):
                yield buf[start:start + self.max_elements]

    def allreduce(self, comm):
        """In place: every buffer becomes the elementwise sum of it over all ranks."""
        from .mpi import mpi

        MPI = mpi()
        for chunk in self.chunks():
            comm.Allreduce(MPI.IN_PLACE, chunk, op=MPI.SUM)

    def bcast(self, comm, root=0):
        """In place: every rank's buffers become ``root``'s."""
        for chunk in self.chunks():
            comm.Bcast(chunk, root=root)
