"""``lsray serve``: local Ray on 127.0.0.1, then the Serve config file deployed as ``serve run`` would."""

from __future__ import annotations

import argparse


def serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="YAML", help="Serve config file (default: the packaged lsray/serve/serve.yaml)")
    p.add_argument("--bundle", metavar="DIR", help="override the app's args.bundle")
    p.add_argument("--port", type=int, help="override http_options.port")
    p.add_argument("--num-cpus", type=int, help="logical CPUs of the local Ray node (default: all)")
    p.add_argument("--check", action="store_true", help="validate the config (ServeDeploySchema + app args) and exit")


def run_serve(args: argparse.Namespace) -> int:
    import time

    from lsray.errors import LsrayError
    from lsray.serve import deploy
    from lsray.serve.settings import ServeSettings

    config = deploy.load_config(args.config or deploy.DEFAULT_CONFIG)
    config = deploy.with_overrides(config, args={"bundle": args.bundle} if args.bundle else None,
                                   http={"port": args.port} if args.port else None)
    try:
        deploy.validate(config)
        app = next(a for a in config["applications"] if a["name"] == deploy.APP_NAME)
        ServeSettings(**app.get("args", {}))
    except ValueError as exc:
        raise LsrayError(f"invalid serve config: {exc}") from exc
    if args.check:
        print("config OK")
        return 0
    deploy.init_local_ray(num_cpus=args.num_cpus)
    url = deploy.deploy(config)
    print(f"lsray serving at {url} (API docs at {url}/docs); Ctrl-C stops it")
    from ray import serve

    try:
        while True:
            time.sleep(10)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0
