"""Online dubbing: the pipeline's stages as Ray Serve deployments behind one FastAPI ingress.

Read top to bottom: ``settings`` (what an operator configures: the app's ``args`` in
``deployments/serve.yaml``), ``security`` (API keys, storage roots, webhook allowlist), ``inputs``
(uploads and URIs -> local media files, with limits and content sniffing), ``stages`` (one
deployment per heavy stage), ``dag`` (the clip DAG over DeploymentHandles), ``jobs`` (async jobs
and webhooks), ``api`` (the FastAPI ingress), ``app`` (the application builder), ``deploy``
(config file -> running application) and ``cli`` (``lsray serve``).

Importing this package is cheap: Ray, torch and FastAPI are imported by the modules that need them.
"""
