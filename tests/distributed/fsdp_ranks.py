"""One rank of the FSDP state test; run by ``test_fsdp_state.py`` as::

    python -m torch.distributed.run --standalone --nproc-per-node 2 fsdp_ranks.py OUT_DIR

Accelerate shards only on accelerators, so on a CPU machine this applies PyTorch's FSDP2
(``fully_shard``, what accelerate's plugin applies with ``fsdp_version=2``) by hand, one unit per
decoder block plus the root, and checks ``training/fsdp.py`` and the checkpoint functions on
real shards over gloo: the gathered weights and optimizer state are the unsharded model's, a
checkpoint written from them loads back into shards (and into a model without FSDP), and an
index-keyed optimizer state from a run without FSDP loads into shards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import LlamaConfig, LlamaForCausalLM

from tunesmith.training.checkpoint import (
    OPTIMIZER_FILE,
    TrainerState,
    load_checkpoint,
    save_checkpoint,
)
from tunesmith.training.fsdp import (
    gather_model_state,
    gather_optimizer_state,
    named_optimizer_state,
    scatter_model_state,
)
from tunesmith.training.losses import CausalLMLoss


def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def shard(loss: CausalLMLoss) -> CausalLMLoss:
    for block in loss.model.model.layers:
        fully_shard(block)
    fully_shard(loss)
    return loss


def batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 64, (2, 12), generator=generator)
    return {
        "input_ids": ids,
        "position_ids": torch.arange(12).expand(2, 12),
        "targets": torch.roll(ids, -1, dims=1),
    }


def train_step(loss: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    total, _, count = loss(**batch())
    (total / count).backward()  # every rank sees the same batch: FSDP's mean is that gradient
    optimizer.step()
    optimizer.zero_grad()


def optimizer_for(module: torch.nn.Module) -> tuple[torch.optim.Optimizer, object]:
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return optimizer, scheduler


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a.float(), b.float(), rtol=1e-5, atol=1e-6)


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()

    # reference: one unsharded copy, trained on the same batch
    reference = CausalLMLoss(tiny_model())
    ref_optimizer, _ = optimizer_for(reference)
    train_step(reference, ref_optimizer)

    sharded = shard(CausalLMLoss(tiny_model()))
    optimizer, scheduler = optimizer_for(sharded)
    train_step(sharded, optimizer)

    weights = gather_model_state(sharded)
    state = gather_optimizer_state(sharded, optimizer)
    if rank == 0:
        expected = reference.model.state_dict()
        assert set(weights) == set(expected), set(weights) ^ set(expected)
        for key, value in expected.items():
            close(weights[key], value)
        assert set(state["state"]) == {"model." + n for n, _ in reference.model.named_parameters()}
    else:
        assert weights == {} and state == {}

    # a checkpoint written by rank 0 from the gathered state ...
    path = out / "run"
    if rank == 0:
        path = save_checkpoint(
            out / "run", TrainerState(step=1), lambda folder: None, optimizer, scheduler,
            optimizer_state=state,
        )  # fmt: skip
    holder = [str(path)]
    dist.broadcast_object_list(holder)
    path = Path(holder[0])

    # ... loads into a fresh sharded model on every rank (weights scattered from rank 0) ...
    again = shard(CausalLMLoss(tiny_model()))
    scatter_model_state(again, weights if rank == 0 else {})
    again_optimizer, again_scheduler = optimizer_for(again)
    load_checkpoint(path, again_optimizer, again_scheduler, module=again, sharded=True)
    train_step(again, again_optimizer)
    train_step(sharded, optimizer)
    continued, expected_state = gather_model_state(again), gather_model_state(sharded)
    for key, value in expected_state.items():
        close(continued[key], value)

    # ... and into a model without FSDP, which then trains exactly like the sharded one
    plain = CausalLMLoss(tiny_model())
    plain.model.load_state_dict(weights if rank == 0 else reference.model.state_dict())
    plain_optimizer, plain_scheduler = optimizer_for(plain)
    load_checkpoint(path, plain_optimizer, plain_scheduler, module=plain)
    train_step(plain, plain_optimizer)
    train_step(reference, ref_optimizer)
    for key, value in reference.model.state_dict().items():
        close(plain.model.state_dict()[key], value)

    # an index-keyed optimizer state (a DDP or single-process checkpoint) loads into shards;
    # rank 0 rewrites the file only once every rank has read it (the plain part above has no
    # collective to hold rank 0 back, and a slow rank 1 read a half-written file)
    dist.barrier()
    if rank == 0:
        torch.save(
            {"optimizer": ref_optimizer.state_dict(), "scheduler": plain_scheduler.state_dict()},
            path / OPTIMIZER_FILE,
        )
    dist.barrier()
    named = named_optimizer_state(reference, ref_optimizer, ref_optimizer.state_dict())
    by_name = gather_optimizer_state(reference, ref_optimizer)
    if rank == 0:  # the same names as torch's own name-keyed state
        assert set(named["state"]) == set(by_name["state"])
    third = shard(CausalLMLoss(tiny_model()))
    scatter_model_state(third, reference.model.state_dict() if rank == 0 else {})
    third_optimizer, third_scheduler = optimizer_for(third)
    load_checkpoint(path, third_optimizer, third_scheduler, module=third, sharded=True)
    train_step(third, third_optimizer)
    train_step(reference, ref_optimizer)
    gathered = gather_model_state(third)
    if rank == 0:
        for key, value in reference.model.state_dict().items():
            close(gathered[key], value)
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        (out / "ok").write_text("ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
