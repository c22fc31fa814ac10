"""`reconcile` and `reconcile --watch` as a user runs them, against the real engine.

Each test runs the command line in a scope of its own (`--scope`), so the pods of anyone else
on this engine are neither seen nor pruned.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from reconciler import labels

from . import daemon
from .conftest import SLEEPER, Yard, rc_manifest

pytestmark = pytest.mark.docker


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def test_converges_once_and_a_second_run_does_nothing_and_says_so(yard: Yard) -> None:
    yard.write(3)
    yard.commit("three replicas")
    first = yard.reconcile()
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(f"+ create pod {yard.namespace}/web-") == 3
    assert "converged" in first.stdout
    ids = sorted(c["Id"] for c in yard.app_containers())
    second = yard.reconcile()
    assert second.returncode == 0, second.stderr
    assert "nothing to do: 3 pods match the manifests" in second.stdout
    assert sorted(c["Id"] for c in yard.app_containers()) == ids


def test_invalid_manifests_change_nothing_and_exit_1(yard: Yard) -> None:
    yard.write(2)
    assert yard.reconcile().returncode == 0
    yard.write("-1")
    result = yard.reconcile()
    assert result.returncode == 1
    assert "web.yaml:" in result.stderr and "spec.replicas" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(yard.running_pods()) == 2


def test_committed_reconciles_head_not_the_working_tree(yard: Yard) -> None:
    yard.write(1)
    yard.commit("one replica")
    yard.write(3)  # uncommitted
    assert yard.reconcile("--committed").returncode == 0
    assert len(yard.running_pods()) == 1
    stamp = yard.app_containers()[0]["Labels"]
    assert isinstance(stamp, dict) and stamp[labels.REVISION]
    assert not stamp[labels.REVISION].endswith("-dirty")


def test_not_converging_within_the_timeout_exits_2(yard: Yard) -> None:
    yard.root.joinpath("web.yaml").write_text(
        rc_manifest(yard.namespace, 1).replace(SLEEPER, "[sh, -c, 'exit 3']")
    )
    # 10 s: room for the crash to be seen twice on a loaded machine (the second one starts
    # the 30 s back-off that the timeout must end in), far below the back-off itself.
    result = yard.reconcile("--timeout", "10", "--backoff-initial", "30")
    assert result.returncode == 2
    assert "not converged within 10s" in result.stderr
    assert "back-off" in result.stderr


def test_watch_committed_applies_each_new_commit_and_never_the_work_tree(yard: Yard) -> None:
    yard.write(1)
    yard.commit("one replica")
    # No resync within the test: only the moved ref can wake the loop.
    process = yard.watch("--committed", "--resync", "600")
    try:
        yard.wait_for(lambda: len(yard.running_pods()) == 1, "the committed replica")
        yard.write(2)
        yard.commit("two replicas")
        yard.wait_for(lambda: len(yard.running_pods()) == 2, "the new commit")
        yard.write(3)
        time.sleep(2)  # an uncommitted edit changes nothing, however long it stays
        assert len(yard.running_pods()) == 2
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_watch_follows_edits_keeps_last_valid_state_and_stops_on_sigterm(yard: Yard) -> None:
    yard.write(2)
    process = yard.watch()
    try:
        yard.wait_for(lambda: len(yard.running_pods()) == 2, "2 pods")
        yard.write(3)
        yard.wait_for(lambda: len(yard.running_pods()) == 3, "scale up to 3")

        yard.file.write_text("apiVersion: v1\nkind: ReplicationController\nspec: [\n")
        yard.wait_for(lambda: "web.yaml:" in yard.output(), "the error to be reported")
        time.sleep(3)  # more than one resync: a bad file must not delete anything
        assert len(yard.running_pods()) == 3
        assert "keeping the last valid state" in yard.output()

        yard.write(1)
        yard.wait_for(lambda: len(yard.running_pods()) == 1, "the fix to apply")

        (victim,) = yard.app_containers()
        yard.api.kill(victim["Id"])
        yard.wait_for(
            lambda: any(c["Labels"].get(labels.RESTARTS) == "1" for c in yard.app_containers()),
            "the killed container to be restarted",
        )
        assert stop(process) == 0
        assert "Traceback" not in yard.output()
    finally:
        if process.poll() is None:
            process.kill()


# An opt-out for machines whose engine others are using: a restart stops all their containers.
@pytest.mark.skipif(
    os.environ.get("PODYARD_NO_ENGINE_RESTART") == "1",
    reason="PODYARD_NO_ENGINE_RESTART=1: the engine is shared and must not be restarted",
)
def test_watch_survives_an_engine_restart_and_converges(yard: Yard) -> None:
    engine = daemon.find()  # before anything runs: fails at once where dockerd is no process
    yard.write(2)
    process = yard.watch()
    try:
        yard.wait_for(lambda: len(yard.running_pods()) == 2, "2 pods")
        restarted = daemon.restart(engine)
        assert (restarted.argv, restarted.cwd, restarted.env, restarted.outputs) == (
            engine.argv, engine.cwd, engine.env, engine.outputs), "not started as it was"
        yard.wait_for(lambda: len(yard.running_pods()) == 2, "2 pods after the restart", 180)
        assert process.poll() is None, yard.output()
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_sigterm_stops_watch_between_resyncs_without_waiting_for_the_next(yard: Yard) -> None:
    yard.write(1)
    process = yard.watch("--resync", "600")
    try:
        yard.wait_for(lambda: len(yard.running_pods()) == 1, "1 pod")
        yard.wait_for(lambda: "nothing to do" in yard.output() or "created" in yard.output()
                      or "+ create" in yard.output(), "the first pass")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0  # far less than the 600 s resync
        assert len(yard.running_pods()) == 1  # stopping the controller leaves the pods
    finally:
        if process.poll() is None:
            process.kill()
