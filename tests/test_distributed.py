"""Several processes (gloo on the CPU, as under torchrun): the same statistics and parameters as one process."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from heavytail import LinearProblem, make_optimizer
from heavytail.train import train
from test_gpt2 import tiny_text_problem


def _train(kind: str):
    if kind == "text":  # mini-batch, micro-batches, rows every 3 steps, validation
        problem = tiny_text_problem(validation=True, log_every=3)
        optimizer = make_optimizer("gd+m", problem.model.parameters(), 0.3)  # not Adam: it scales the rounding noise of the
        # key bias's zero gradient (softmax ignores it) up to full steps, which then differ between the two layouts
        result = train(problem, optimizer, 7, batch_size=10, chunk_size=3, seed=1)
    else:  # full batch in chunks
        problem = LinearProblem(m=5).build(0)
        optimizer = make_optimizer("gd+m", problem.model.parameters(), 0.5)
        result = train(problem, optimizer, 5, chunk_size=37)
    return result, [p.detach().clone() for p in problem.model.parameters()]


def _worker(rank: int, world: int, init: str, out: str, kind: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        result, params = _train(kind)
        torch.save({"params": params, "class_loss": result.history.class_loss, "step": result.history.step,
                    "validation": None if result.validation is None else result.validation.class_loss}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["text", "linear"])
def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, kind):
    torch.set_num_threads(1)
    single, params = _train(kind)
    out = str(tmp_path / "out")
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'init'}", out, kind), nprocs=2, join=True)
    for rank in range(2):
        got = torch.load(f"{out}.{rank}", weights_only=False)
        np.testing.assert_array_equal(got["step"], single.history.step)
        np.testing.assert_allclose(got["class_loss"], single.history.class_loss, rtol=2e-5, atol=1e-6)
        if single.validation is not None:
            np.testing.assert_allclose(got["validation"], single.validation.class_loss, rtol=2e-5, atol=1e-6)
        for a, b in zip(got["params"], params):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
