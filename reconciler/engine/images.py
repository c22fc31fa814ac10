"""Images on one node: `imagePullPolicy` applied, and the pause image built or pulled.

Remembers which images it has seen present (one inspect per image, not per pod) and when it
last pulled each, so an `Always` pull counts for the pods that follow it closely.
"""

from __future__ import annotations

import io
import threading
import time

import docker

from reconciler import errors
from reconciler.engine import client, pause

PULL_REUSE_SECONDS = 30.0  # an `Always` pull this recent counts for the pods that follow


class Images:
    """One node's images, through its client; safe to share between worker threads."""

    def __init__(self, node: str, api: docker.APIClient, pause_image: str) -> None:
        self.node = node
        self.api = api
        self.pause_image = pause_image
        self._present: set[str] = set()
        self._pulled: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pause_ready = False

    def ensure_pause(self) -> str:
        """The pause image: pulled when it names a registry (as the cluster's does), else
        built on the node from the controller's busybox when missing."""
        with self._lock:
            if self._pause_ready:
                return self.pause_image
            if not self._is_present(self.pause_image):
                if names_registry(self.pause_image):
                    self._pull(self.pause_image)
                else:
                    self._build_pause()
            self._pause_ready = True
            return self.pause_image

    def ensure(self, image: str, policy: str) -> None:
        """Apply `imagePullPolicy` (see `pull_decision`); Refused when Never finds nothing."""
        with self._lock:
            pulled_at = self._pulled.get(image)
        ago = None if pulled_at is None else time.monotonic() - pulled_at
        present = policy != "Always" and self._is_present(image)  # Always never asks
        decision = pull_decision(policy, present=present, pulled_ago=ago)
        if decision == REFUSE:
            raise errors.Refused(
                f"image {image} is not present on {self.node} and imagePullPolicy is Never"
            )
        if decision == PULL:
            self._pull(image)
            with self._lock:
                self._pulled[image] = time.monotonic()

    def forget(self, image: str) -> None:
        """Drop an image from what is known present (it was removed behind our back)."""
        with self._lock:
            self._present.discard(image)

    def _is_present(self, image: str) -> bool:
        if image in self._present:
            return True
        try:
            with client.engine_errors(self.node, "inspect image"):
                self.api.inspect_image(image)
        except errors.NotFound:
            return False
        self._present.add(image)
        return True

    def _pull(self, image: str) -> None:
        repository, tag = split_image(image)
        with client.engine_errors(self.node, f"pull image {image}"):
            self.api.pull(repository, tag=tag)
        self._present.add(image)

    def _build_pause(self) -> None:
        context = pause.build_context()
        what = "build the pause image"
        with client.engine_errors(self.node, what):
            output = self.api.build(
                fileobj=io.BytesIO(context),
                custom_context=True,
                tag=self.pause_image,
                rm=True,
                decode=True,
            )
            for line in output:
                if "error" in line:
                    raise errors.Refused(f"{what} on {self.node}: {line['error']}")
        self._present.add(self.pause_image)


PULL, USE, REFUSE = "pull", "use", "refuse"


def pull_decision(policy: str, *, present: bool, pulled_ago: float | None) -> str:
    """What `imagePullPolicy` asks for, as the kubelet reads it.

    Always: pull, unless this node pulled the image less than PULL_REUSE_SECONDS ago (the
    pods of one rollout share a pull). IfNotPresent: pull only when missing. Never: use what
    is there, or refuse.
    """
    if policy == "Always":
        recent = pulled_ago is not None and pulled_ago < PULL_REUSE_SECONDS
        return USE if recent else PULL
    if present:
        return USE
    return REFUSE if policy == "Never" else PULL


def names_registry(image: str) -> bool:
    """Whether an image reference starts with a registry host (`reg.example:5000/pause:1`)."""
    first, slash, _ = image.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def split_image(image: str) -> tuple[str, str | None]:
    """`repo:tag` or `repo@digest` into what `pull` expects; the port of a registry is kept."""
    if "@" in image:
        return image, None
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"
