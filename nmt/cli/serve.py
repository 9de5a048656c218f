"""`nmt-serve run=DIR port=8000`: a translation server with a page, on 127.0.0.1 by default.

Endpoints (nmt/serve/app.py): POST /translate, /score, /analyze; GET /health, /info, / (the
page) and /docs (OpenAPI). SIGTERM or Ctrl-C lets requests in flight finish, then exits 0.
Needs the optional extra: pip install 'nmt[serve]'.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from nmt.cli import check_runs, hydra_errors, openmp_waits, report_errors
from nmt.config import register_configs
from nmt.config_checks import validate
from nmt.errors import ConfigError
from nmt.resources import conf_dir

register_configs()


@hydra_errors
@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="serve")
@report_errors
def main(cfg: DictConfig) -> None:
    validate(cfg)
    openmp_waits()  # before torch is imported
    try:
        from nmt.serve import server
        from nmt.serve.app import create_app
    except ImportError as err:
        raise ConfigError(
            f"nmt-serve needs FastAPI and uvicorn ({err.name} is missing): pip install 'nmt[serve]'"
        ) from None
    sock = server.bind(cfg.host, cfg.port)  # a port in use is refused before the model loads
    check_runs(cfg.run)  # and a wrong run= before torch is imported
    from nmt.translator import Translator

    translator = Translator.load(cfg.run, cfg.checkpoint, cfg.device, cfg.threads, cfg.kernels)
    app = create_app(translator, cfg.serve, cfg.decode)
    where = server.address(sock)

    def started() -> None:
        print(f"nmt-serve: {cfg.run} at {where} (API: {where}docs)", file=sys.stderr, flush=True)

    server.run(app, sock, cfg.serve.drain_timeout_s, started=started)


if __name__ == "__main__":
    main()
