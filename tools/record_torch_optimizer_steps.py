"""Record torch.optim.SGD and Adam trajectories for tests/test_optimizers.py (needs PyTorch; run once).

Two parameter groups of 6 weights each, as kerasflow trains them: the main group at the base rate with
L2 4e-5, a second group at 0.01x the rate with no L2. The loss is ``sum(0.5 * a * w^2 + d_t . w)``, so
the gradient ``a * w + d_t`` depends on where the weights are; the base rate drops x0.1 at steps 20 and
40 (MultiStepLR stepped every step). The file holds the inputs and the weights after every step:

    python tools/record_torch_optimizer_steps.py tests/fixtures/torch_optimizer_steps.npz
"""

import argparse

import numpy as np
import torch

STEPS, MILESTONES, GAMMA = 60, (20, 40), 0.1
GROUPS = ((1.0, 4e-5), (0.01, 0.0))  # (rate factor, L2) of each group of 6 weights
SETTINGS = {"sgd": {"lr": 0.05, "momentum": 0.9}, "adam": {"lr": 0.01, "eps": 1e-4}}


def trajectory(name, start, curvature, pushes):
    """Weights after each of ``STEPS`` steps of torch's ``name`` optimizer, ``(STEPS, 12)`` float32."""
    settings = dict(SETTINGS[name])
    rate = settings.pop("lr")
    weights = [torch.nn.Parameter(torch.from_numpy(part.copy())) for part in np.split(start, len(GROUPS))]
    groups = [{"params": [w], "lr": rate * factor, "weight_decay": l2} for w, (factor, l2) in zip(weights, GROUPS)]
    optimizer = torch.optim.SGD(groups, **settings) if name == "sgd" else torch.optim.Adam(groups, **settings)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, MILESTONES, GAMMA)
    steps = []
    for push in pushes:
        flat = torch.cat([w.detach() for w in weights])
        for w, grad in zip(weights, torch.split(torch.from_numpy(curvature) * flat + torch.from_numpy(push), 6)):
            w.grad = grad.clone()
        optimizer.step()
        schedule.step()
        steps.append(torch.cat([w.detach() for w in weights]).numpy().copy())
    return np.stack(steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    start = rng.normal(size=12).astype(np.float32)
    curvature = rng.uniform(0.5, 2.0, size=12).astype(np.float32)
    pushes = rng.normal(size=(STEPS, 12)).astype(np.float32)
    np.savez(args.out, start=start, curvature=curvature, pushes=pushes, milestones=np.array(MILESTONES),
             gamma=np.float32(GAMMA), torch_version=np.array(torch.__version__),
             **{name: trajectory(name, start, curvature, pushes) for name in SETTINGS})


if __name__ == "__main__":
    main()
