"""Two "machines" on one: a two-node ``torchrun`` rendezvous between two network namespaces.

Each namespace is a host with one interface, the end of a veth pair (10.213.x.1 and .2), and
nothing else: no route out, so the rendezvous (node 0's TCP store), gloo's traffic and the
gradients can only cross the veth pair. Each node runs ``tunesmith finetune --nnodes 2
--node-rank R --rdzv-endpoint 10.213.x.1:PORT`` with one process; together they must train
what one process trains (the same loss at every step). The bytes counted on the veth show the
traffic went that way.

It needs root (``ip netns``); it skips cleanly where namespaces cannot be made, and removes
them whatever happens.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.distributed.conftest import cli_env
from tests.distributed.test_launch import finetune_args, losses, spec
from tests.helpers import write_jsonl
from tests.training.conftest import chat_rows
from tunesmith.settings import Settings
from tunesmith.training.run import finetune

pytestmark = pytest.mark.slow
PORT = 29517


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


@dataclass
class Host:
    netns: str
    interface: str
    address: str

    def exec(self, command: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *command]

    def bytes_sent(self) -> int:
        out = ip("-n", self.netns, "-s", "-j", "link", "show", self.interface)
        return int(json.loads(out.stdout)[0]["stats64"]["tx"]["bytes"])


@pytest.fixture
def two_hosts() -> Iterator[tuple[Host, Host]]:
    tag = secrets.token_hex(3)
    subnet = f"10.213.{int(tag[:2], 16)}"
    hosts = (
        Host(f"ts-a-{tag}", f"tsva{tag}", f"{subnet}.1"),
        Host(f"ts-b-{tag}", f"tsvb{tag}", f"{subnet}.2"),
    )
    try:
        made = ip("netns", "add", hosts[0].netns)
        if made.returncode != 0:
            pytest.skip(f"cannot make network namespaces here: {made.stderr.strip()}")
        steps = [
            ("netns", "add", hosts[1].netns),
            ("link", "add", hosts[0].interface, "type", "veth", "peer", "name", hosts[1].interface),
        ]
        for host in hosts:
            steps += [
                ("link", "set", host.interface, "netns", host.netns),
                ("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", host.interface),
                ("-n", host.netns, "link", "set", host.interface, "up"),
                ("-n", host.netns, "link", "set", "lo", "up"),
            ]
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                pytest.skip(f"ip {' '.join(step)} failed: {done.stderr.strip()}")
        yield hosts
    finally:
        for host in hosts:  # deleting a namespace deletes its end of the veth pair too
            ip("netns", "del", host.netns)


def test_two_nodes_rendezvous_over_a_veth_pair(
    two_hosts: tuple[Host, Host], causal_dir: Path, tmp_path: Path
) -> None:
    node0, node1 = two_hosts
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(21, seed=1))
    hp = {"n_epochs": 2, "checkpoint_every": 4}
    one = finetune(
        spec(causal_dir, train, tmp_path / "one", **hp), settings=Settings(data_dir=tmp_path)
    )
    run = tmp_path / "two-nodes"  # one filesystem: what a shared one gives two machines
    endpoint = f"{node0.address}:{PORT}"
    processes = []
    for rank, host in enumerate(two_hosts):
        args = [
            *finetune_args(causal_dir, train, run, **hp),
            "--nnodes", "2", "--node-rank", str(rank), "--rdzv-endpoint", endpoint,
        ]  # fmt: skip
        # gloo binds to this interface (the host name resolves to an address of neither).
        env = cli_env(tmp_path / f"home{rank}") | {"GLOO_SOCKET_IFNAME": host.interface}
        with (tmp_path / f"node{rank}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(  # ip netns exec keeps the environment
                    host.exec([sys.executable, "-m", "tunesmith", *args]),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    try:
        codes = [p.wait(300) for p in processes]
    finally:
        for p in processes:
            p.kill()
    logs = [(tmp_path / f"node{r}.log").read_text(errors="replace") for r in (0, 1)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    assert "node 1 done" in " ".join(logs[1].split())

    meta = json.loads((run / "tunesmith.json").read_text())
    assert meta["environment"]["processes"] == 2 and meta["environment"]["backend"] == "gloo"
    assert losses(run) == pytest.approx(losses(one.output_dir), rel=1e-5)
    # the rendezvous and the gradients crossed the veth pair, both ways
    assert node0.bytes_sent() > 10_000 and node1.bytes_sent() > 10_000
