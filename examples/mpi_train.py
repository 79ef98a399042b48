# SPDX-License-Identifier: MIT
"""Data-parallel training over MPI (docs/distributed.md): mpirun -n 2 python examples/mpi_train.py"""
import zlib

import deltaprop as dp
from mpi4py import MPI

comm = MPI.COMM_WORLD
X, y = dp.datasets.spirals(n_per_class=500, n_classes=3, seed=0)
net = dp.Network([2, 64, 64, 3], activation="tanh", loss="cross_entropy", seed=comm.rank)
hist = net.fit(X, y, epochs=30, batch_size=64, optimizer=dp.optim.Adam(lr=1e-2), seed=1,
               validation_split=0.2, verbose=2, comm=comm, data="replicated", reduction="reproducible")
digests = comm.gather(zlib.crc32(net.params.tobytes()))
if comm.rank == 0:
    print(f"{comm.size} ranks: val_accuracy {hist.val_accuracy[-1]:.3f}; parameters identical on every rank: "
          f"{'yes' if len(set(digests)) == 1 else 'no'} (crc32 {digests[0]:08x}, the same for any -n)")
