# SPDX-License-Identifier: MIT
"""Train a small classifier in PyTorch, export it to ONNX, import it into deltaprop, save the model file.

    python train_export.py OUTDIR

writes OUTDIR/classifier.onnx (what PyTorch exported), OUTDIR/classifier.dpm (the deltaprop model file that
classify.c runs with no Python), OUTDIR/points.txt (points for classify) and OUTDIR/torch_probabilities.txt
(PyTorch's own probabilities for those points, for comparison). Needs torch, onnx and deltaprop.
"""
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

import deltaprop as dp
from deltaprop.onnx import from_onnx


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a tiny model: threads cost more than they give
    X, y = dp.datasets.spirals(n_per_class=100, n_classes=3, seed=0)
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 32), torch.nn.Tanh(),
        torch.nn.Linear(32, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 3), torch.nn.Softmax(dim=-1),
    )
    Xt, yt = torch.from_numpy(X).float(), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):  # full batch; the softmax output is trained through its log
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(model(Xt) + 1e-12), yt)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(Xt).argmax(dim=1) == yt).float().mean().item()
    print(f"PyTorch: training accuracy {accuracy:.3f}")

    onnx_path = outdir / "classifier.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notices about its own choice of path
        torch.onnx.export(model, (Xt[:1],), str(onnx_path), dynamo=False, input_names=["x"], output_names=["probabilities"],
                          dynamic_axes={"x": {0: "batch"}, "probabilities": {0: "batch"}})

    net = from_onnx(onnx_path)  # loss defaults to cross_entropy for a softmax output
    print(f"imported: {net}")
    net.save(outdir / "classifier.dpm")

    points = np.random.default_rng(1).uniform(-1, 1, (20, 2)).astype(np.float32)
    with open(outdir / "points.txt", "w") as f:
        f.write(f"{points.shape[0]} {points.shape[1]}\n")
        for row in points:
            f.write(" ".join(f"{v:.9g}" for v in row) + "\n")
    with torch.no_grad():
        probabilities = model(torch.from_numpy(points)).numpy()
    np.savetxt(outdir / "torch_probabilities.txt", probabilities, fmt="%.9g")
    print(f"deltaprop and PyTorch agree within {np.abs(net.predict(points) - probabilities).max():.1e}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUTDIR")
    main(Path(sys.argv[1]))
