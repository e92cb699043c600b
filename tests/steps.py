"""A few optimiser steps on one fixed batch: the loop the model and loss tests share."""
import torch


def train_steps(model, loss_fn, x, genre, lr: float, beta: float, steps: int) -> list[dict]:
    """AdamW on (``x``, ``genre``) for ``steps`` steps; each step's loss terms, detached."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        terms = loss_fn(model(x, genre), genre, beta=beta)
        terms["total"].backward()
        opt.step()
        history.append({k: v.detach() for k, v in terms.items()})
    return history
