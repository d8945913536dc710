"""A small OpenID Connect provider for the sign-in tests: discovery, authorize, token, JWKS, userinfo.

It signs in whoever its ``--email`` names without asking (the tests drive the dashboard's side
of the flow, not a login form), with the authorization-code flow Streamlit's ``st.login`` uses:
the code is single-use, bound to the client, its redirect URI and the nonce; the ID token is
an RS256 JWT signed with a key made at start and published at ``/jwks``. Run it with
``python tests/servers/oidc_provider.py --port N --client-id ID --client-secret S --email E``.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import time
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Form, Header, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey


def create_provider(*, issuer: str, client_id: str, client_secret: str, email: str, name: str) -> FastAPI:
    """The provider's app (see the module docstring)."""
    key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"})
    codes: dict[str, dict] = {}
    app = FastAPI()

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict:
        return {"issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks", "userinfo_endpoint": f"{issuer}/userinfo",
                "response_types_supported": ["code"], "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

    @app.get("/jwks")
    def jwks() -> dict:
        return {"keys": [key.as_dict(private=False)]}

    @app.get("/authorize")
    def authorize(request: Request) -> RedirectResponse:
        query = request.query_params
        if query.get("client_id") != client_id or query.get("response_type") != "code":
            raise HTTPException(400, "unknown client or response type")
        code = secrets.token_urlsafe(16)
        codes[code] = {"redirect_uri": query.get("redirect_uri"), "nonce": query.get("nonce")}
        target = {"code": code, "state": query.get("state", "")}
        return RedirectResponse(f"{query.get('redirect_uri')}?{urlencode(target)}", status_code=302)

    @app.post("/token")
    def token(grant_type: str = Form(...), code: str = Form(...), redirect_uri: str = Form(...),
              client_id_form: str | None = Form(None, alias="client_id"),
              client_secret_form: str | None = Form(None, alias="client_secret"),
              authorization: str | None = Header(None)) -> JSONResponse:
        given_id, given_secret = client_id_form, client_secret_form
        if authorization and authorization.startswith("Basic "):
            given_id, _, given_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if (given_id, given_secret) != (client_id, client_secret):
            raise HTTPException(401, "bad client credentials")
        grant = codes.pop(code, None)
        if grant_type != "authorization_code" or grant is None or grant["redirect_uri"] != redirect_uri:
            raise HTTPException(400, "invalid grant")
        now = int(time.time())
        claims = {"iss": issuer, "aud": client_id, "sub": email, "email": email, "email_verified": True,
                  "name": name, "iat": now, "exp": now + 600}
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)
        return JSONResponse({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 600,
                             "id_token": id_token})

    @app.get("/userinfo")
    def userinfo() -> dict:
        return {"sub": email, "email": email, "name": name}

    return app


def main() -> None:
    """Serve the provider on 127.0.0.1 until stopped."""
    parser = argparse.ArgumentParser(prog="python tests/servers/oidc_provider.py")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--email", required=True)
    parser.add_argument("--name", default="Test User")
    args = parser.parse_args()
    issuer = f"http://127.0.0.1:{args.port}"
    app = create_provider(issuer=issuer, client_id=args.client_id, client_secret=args.client_secret,
                          email=args.email, name=args.name)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
