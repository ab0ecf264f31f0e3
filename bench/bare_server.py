"""The Store API benchmark's baseline: a bare aiohttp app answering with fixed JSON bytes held in memory.

Run as `python -m bench.bare_server --port P --items FILE --purchase FILE`. It serves the two routes the
benchmark loads with the bytes the real service returned, with no auth, validation or database, so the
ratio shows what cloud-sync costs above aiohttp itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

ITEMS_PATH = "/store_api/store/items"
PURCHASE_PATH = "/store_api/store/purchase"


def build_app(items_body: bytes, purchase_body: bytes) -> web.Application:
    """An app with the items page and the purchase route, each answering its fixed bytes."""

    async def items(_request: web.Request) -> web.Response:
        return web.Response(body=items_body, content_type="application/json")

    async def purchase(request: web.Request) -> web.Response:
        # Read the body as the real route must, so both sides pay for receiving it.
        await request.read()
        return web.Response(body=purchase_body, content_type="application/json")

    app = web.Application()
    app.router.add_get(ITEMS_PATH, items)
    app.router.add_post(PURCHASE_PATH, purchase)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.bare_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--items", type=Path, required=True, help="file with the items page's JSON bytes")
    parser.add_argument("--purchase", type=Path, required=True, help="file with a purchase's JSON bytes")
    args = parser.parse_args(argv)
    app = build_app(args.items.read_bytes(), args.purchase.read_bytes())
    # Same run_app settings as `cloud-sync serve` without --access-log.
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
