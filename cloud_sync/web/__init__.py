"""The HTTP service: the aiohttp app, the route registry and its OpenAPI document, tokens, the Base and
Store APIs (the seed's contract) and the generic resource routes."""
