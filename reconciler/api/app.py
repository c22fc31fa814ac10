"""The API of one controller: its store, its publisher and its server, wired together.

`App` binds the address and loads the TLS files when made, so a bad flag fails before the
first pass; `attach` hooks the controller's passes (`Controller.on_pass`) to the publisher.
"""

from __future__ import annotations

from reconciler import model, plan
from reconciler.api import publisher, server, snapshot, store
from reconciler.cluster import config
from reconciler.control import observation, passes


class App:
    """Serves what a controller publishes, at `listen`, to clients the CA signed."""

    def __init__(self, listen: str, cert: str, key: str, client_ca: str,
                 cluster: config.Cluster, scope: str, reporter: passes.Reporter) -> None:
        context = server.tls_context(cert, key, client_ca)
        self.store = store.Store()
        self.publisher = publisher.Publisher(self.store, scope, reporter.warn)
        self.server = server.Server(listen, context, self.store, cluster)
        self.reporter = publisher.Recorder(reporter, self.publisher)

    def attach(self, controller: passes.Controller) -> None:
        """Publish a snapshot after each of the controller's passes has planned."""

        def offer(desired: model.DesiredState, view: observation.View,
                  the_plan: plan.Plan) -> None:
            try:
                taken = snapshot.take(controller, desired, view, the_plan)
            except Exception as e:  # a bug of the API's must never fail a pass
                self.reporter.warn(f"API snapshot: {type(e).__name__}: {e}")
                return
            self.publisher.offer(taken)

        controller.on_pass = offer

    def start(self) -> None:
        self.publisher.start()
        self.server.start()

    def close(self) -> None:
        self.publisher.close()
        self.server.close()
