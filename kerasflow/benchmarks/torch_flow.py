"""An independent PyTorch eager implementation of the representation-flow layer, written as the
original authors' code is (``F.conv2d`` with grouped kernels, channels first), to time against.

Needs the optional ``bench`` extra (``pip install -e ".[bench]"``). Same algorithm and defaults as
``kerasflow.layers.RepresentationFlow`` (Sobel image gradient, ``"sample"`` min-max normalisation).
"""

import torch
import torch.nn.functional as F

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
DIFFERENCE = torch.tensor([[-1.0, 1.0]])
EPSILON = 1e-12


class TorchFlow(torch.nn.Module):
    """Input ``(B, C, T, H, W)``; output ``(B, 2C, T - 1, H, W)``: ``cat([u_x, u_y])`` on channels."""

    def __init__(self, channels, n_iter=20, theta=0.3, tau=0.25, lam=0.15):
        super().__init__()
        self.n_iter, self.channels = n_iter, channels

        def per_channel(kernel, trains=True):
            return torch.nn.Parameter(kernel.reshape(1, 1, *kernel.shape).repeat(channels, 1, 1, 1), trains)

        self.img_grad_x = per_channel(SOBEL_X, False)
        self.img_grad_y = per_channel(SOBEL_X.t().contiguous(), False)
        self.grad_x, self.grad_y = per_channel(DIFFERENCE), per_channel(DIFFERENCE.t().contiguous())
        self.div_x, self.div_y = per_channel(DIFFERENCE), per_channel(DIFFERENCE.t().contiguous())
        self.theta = torch.nn.Parameter(torch.tensor(theta))
        self.tau = torch.nn.Parameter(torch.tensor(tau))
        self.lam = torch.nn.Parameter(torch.tensor(lam))

    def conv(self, x, weight):
        return F.conv2d(x, weight, groups=self.channels)

    def forward_grad(self, u):
        return F.pad(self.conv(u, self.grad_x), (0, 1, 0, 0)), F.pad(self.conv(u, self.grad_y), (0, 0, 0, 1))

    def divergence(self, px, py):
        px = F.pad(px[:, :, :, :-1], (1, 1, 0, 0))
        py = F.pad(py[:, :, :-1], (0, 0, 1, 1))
        return self.conv(px, self.div_x) + self.conv(py, self.div_y)

    def dual(self, u, px, py, tau_theta):
        a, b = self.forward_grad(u)
        norm = 1.0 + tau_theta * torch.sqrt(a * a + b * b + EPSILON)
        return (px + tau_theta * a) / norm, (py + tau_theta * b) / norm

    def forward(self, x):
        batch, channels, frames, height, width = x.shape
        low = x.amin(dim=(1, 2, 3, 4), keepdim=True)
        high = x.amax(dim=(1, 2, 3, 4), keepdim=True)
        x = (255.0 * (x - low) / (high - low + 1e-6)).transpose(1, 2)
        f1 = x[:, :-1].reshape(-1, channels, height, width)
        f2 = x[:, 1:].reshape(-1, channels, height, width)
        padded = F.pad(f2, (1, 1, 1, 1), mode="replicate")  # = symmetric padding by one pixel
        gx, gy = self.conv(padded, self.img_grad_x), self.conv(padded, self.img_grad_y)
        g2 = gx * gx + gy * gy + EPSILON
        has_gradient = g2 > EPSILON
        safe = torch.where(has_gradient, g2, torch.ones_like(g2))
        rho_c = f2 - f1
        lam_theta, tau_theta = self.lam * self.theta, self.tau / self.theta
        zero = torch.zeros((), dtype=x.dtype)
        u_x = u_y = p11 = p12 = p21 = p22 = torch.zeros_like(f2)
        for _ in range(self.n_iter):
            rho = rho_c + gx * u_x + gy * u_y
            threshold = lam_theta * g2
            step = torch.where(rho < -threshold, lam_theta,
                               torch.where(rho > threshold, -lam_theta, torch.where(has_gradient, -rho / safe, zero)))
            u_x = u_x + step * gx + self.theta * self.divergence(p11, p12)
            u_y = u_y + step * gy + self.theta * self.divergence(p21, p22)
            p11, p12 = self.dual(u_x, p11, p12, tau_theta)
            p21, p22 = self.dual(u_y, p21, p22, tau_theta)
        flow = torch.cat([u_x, u_y], dim=1).reshape(batch, frames - 1, 2 * channels, height, width)
        return flow.transpose(1, 2)
