"""OAuth 2.0 (authorization code grant): the sign-in page, tokens and revocation.

- GET ``/oauth2/authorize``: checks the client and that ``redirect_uri`` is exactly the
  one registered for it (else a 400 error page; an unverified URI is never redirected
  to), then shows the sign-in and consent page.
- POST ``/oauth2/authorize``: the page's form. Checks client and redirect URI again (the
  form's hidden fields are attacker-controlled like any input) and the CSRF token; Deny
  redirects with ``error=access_denied``; Allow with a right password redirects with a
  single-use ``code``; a wrong password shows the page again with 401. Repeated wrong
  passwords lock the account and the client's address for a while: 429 with
  ``Retry-After`` (``vzcloud.server.login_limit``).
- POST ``/oauth2/token``: client authentication (``client_id``/``client_secret``
  parameters or HTTP Basic), then the ``authorization_code`` or ``refresh_token`` grant
  (``vzcloud.server.auth`` holds the token rules). ``Cache-Control: no-store``.
- POST ``/oauth2/revoke``: RFC 7009; 200 even for an unknown token.

Login CSRF: the page sets a random ``vzcloud_csrf`` cookie (HttpOnly, SameSite=Strict)
and repeats its value in a hidden field; the POST must carry both, equal. Another site
can neither read the value nor make the browser send the cookie with a cross-site POST,
so it cannot sign a victim's browser in to an account of its choosing. The pages forbid
framing (``X-Frame-Options: DENY``, CSP ``frame-ancestors 'none'``) against clickjacking
and load nothing but their own inline style (CSP with a per-response nonce).
"""

from __future__ import annotations

import base64
import hmac
import html
import re
import secrets
import string
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from vzcloud.api import errors as E
from vzcloud.api.endpoints import BASE_PATH
from vzcloud.server import auth
from vzcloud.server.app import Ctx, error_response
from vzcloud.server.routes import handler

CSRF_COOKIE = "vzcloud_csrf"
_CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# What a CSP source expression may safely be built from (no spaces, quotes or ';').
_CSP_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*:(//[A-Za-z0-9.\-\[\]:]+)?")


@cache
def _template(name: str) -> string.Template:
    text = resources.files("vzcloud.server").joinpath("templates", name).read_text("utf-8")
    return string.Template(text)


def _escape(value: str | None) -> str:
    return html.escape(value or "", quote=True)


def _security_headers(nonce: str, form_action: str) -> dict[str, str]:
    return {
        **_NO_STORE,
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; form-action {form_action}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _form_action(redirect_uri: str) -> str:
    """CSP ``form-action`` for the page: our own origin and, because browsers check the
    redirect that follows a form submission too, the registered redirect URI's origin."""
    parts = urlsplit(redirect_uri)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
    if _CSP_ORIGIN.fullmatch(origin.lower()):
        return f"'self' {origin}"
    return "'self'"


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _refuse(request: Request, description: str) -> Response:
    """A 400 that never redirects: an HTML page for browsers, the JSON error otherwise."""
    if not _wants_html(request):
        raise E.BadRequestError(description)
    nonce = secrets.token_urlsafe(16)
    page = _template("oauth_error.html").substitute(
        nonce=nonce, description=_escape(description), error="invalid_request"
    )
    return HTMLResponse(page, status_code=400, headers=_security_headers(nonce, "'none'"))


def _verified_client(ctx: Ctx, args: dict[str, Any]) -> auth.RegisteredClient | Response:
    """The client of the request if ``redirect_uri`` is exactly its registered one, else the
    refusal to send back (which never redirects)."""
    client = auth.registered_client(ctx.store, args["client_id"])
    if client is None:
        return _refuse(ctx.request, f"unknown client_id {args['client_id']!r}")
    if args["redirect_uri"] != client.redirect_uri:
        return _refuse(
            ctx.request,
            "redirect_uri is not the one registered for this client "
            f"(registered: {client.redirect_uri})",
        )
    return client


def _csrf_token(request: Request) -> str:
    """The browser's CSRF token: its current cookie if it has a well-formed one."""
    current = request.cookies.get(CSRF_COOKIE, "")
    return current if _CSRF_SHAPE.fullmatch(current) else secrets.token_urlsafe(32)


def _login_page(
    client: auth.RegisteredClient, args: dict[str, Any], csrf: str,
    status: int = 200, error: str = "",
) -> Response:
    nonce = secrets.token_urlsafe(16)
    page = _template("authorize.html").substitute(
        nonce=nonce,
        action=_escape(BASE_PATH + "/oauth2/authorize"),
        client_name=_escape(client.name or client.client_id),
        client_id=_escape(client.client_id),
        redirect_uri=_escape(client.redirect_uri),
        response_type=_escape(args["response_type"]),
        state=_escape(args.get("state")),
        csrf=_escape(csrf),
        username=_escape(args.get("username")),
        error=f'<p class="error" role="alert">{_escape(error)}</p>' if error else "",
    )
    response = HTMLResponse(page, status_code=status,
                            headers=_security_headers(nonce, _form_action(client.redirect_uri)))
    response.set_cookie(CSRF_COOKIE, csrf, max_age=3600, path=BASE_PATH + "/oauth2",
                        httponly=True, samesite="strict")
    return response


def _redirect(redirect_uri: str, **params: str | None) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + query, status_code=302,
                            headers={**_NO_STORE, "Referrer-Policy": "no-referrer"})


def _too_many_attempts(request: Request, client: auth.RegisteredClient, args: dict[str, Any],
                       csrf: str, wait: int) -> Response:
    """429 with Retry-After while sign-ins are locked (``server.login_limit``): the page
    again with the reason for browsers, the JSON error otherwise."""
    description = (f"Too many failed sign-in attempts for this account or from this "
                   f"address. Try again in {wait} seconds.")
    if not _wants_html(request):
        raise E.RateLimitedError(description, error="too_many_attempts", retry_after=wait)
    response = _login_page(client, args, csrf, 429, description)
    response.headers["Retry-After"] = str(wait)
    return response


@handler("authorize")
def authorize(ctx: Ctx, args: dict[str, Any]) -> Response:
    client = _verified_client(ctx, args)
    if isinstance(client, Response):
        return client
    return _login_page(client, args, _csrf_token(ctx.request))


@handler("authorize_submit")
def authorize_submit(ctx: Ctx, args: dict[str, Any]) -> Response:
    client = _verified_client(ctx, args)
    if isinstance(client, Response):
        return client
    cookie = ctx.request.cookies.get(CSRF_COOKIE, "")
    if not (cookie and args["csrf"] and hmac.compare_digest(cookie, args["csrf"])):
        return _refuse(
            ctx.request,
            "the sign-in form did not come from this server's sign-in page (missing or "
            "mismatched CSRF cookie); open the sign-in link again",
        )
    if args["decision"] == "deny":
        return _redirect(client.redirect_uri, error="access_denied", state=args["state"])
    if not args["username"] or not args["password"]:
        return _login_page(client, args, cookie, 400, "Enter your user name and password.")
    limiter = ctx.cloud.login_limiter
    address = ctx.request.client.host if ctx.request.client else ""
    wait = limiter.retry_after(args["username"], address)
    if wait is not None:
        return _too_many_attempts(ctx.request, client, args, cookie, wait)
    account = auth.check_login(ctx.store, args["username"], args["password"])
    if account is None:
        limiter.failed(args["username"], address)
        return _login_page(client, args, cookie, 401, "Wrong user name or password.")
    limiter.succeeded(args["username"])
    code = auth.create_auth_code(
        ctx.store, ctx.cloud.config, client.client_id, account.id, client.redirect_uri
    )
    return _redirect(client.redirect_uri, code=code, state=args["state"])


def _authenticated_client(ctx: Ctx, args: dict[str, Any]) -> auth.RegisteredClient:
    """The calling client, by HTTP Basic or by ``client_id``/``client_secret`` parameters
    (RFC 6749 2.3.1); UnauthorizedError ``invalid_client`` if it does not check out."""
    scheme, _, value = ctx.request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return auth.check_client(ctx.store, args["client_id"], args["client_secret"])
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise E.UnauthorizedError("malformed HTTP Basic credentials", error="invalid_client") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise E.UnauthorizedError("malformed HTTP Basic credentials", error="invalid_client")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if args["client_id"] not in (None, client_id):
        raise E.UnauthorizedError("client_id differs from the HTTP Basic user name",
                                  error="invalid_client")
    return auth.check_client(ctx.store, client_id, secret)


def _client_or_error(ctx: Ctx, args: dict[str, Any]) -> auth.RegisteredClient | Response:
    try:
        return _authenticated_client(ctx, args)
    except E.UnauthorizedError as err:
        response = error_response(err)
        if ctx.request.headers.get("authorization", "").lower().startswith("basic"):
            response.headers["WWW-Authenticate"] = 'Basic realm="vzcloud"'
        return response


def _required(args: dict[str, Any], name: str, grant: str) -> str:
    value = args[name]
    if value is None:
        raise E.BadRequestError(f"grant_type={grant} needs the parameter {name!r}")
    return str(value)


@handler("token")
def token(ctx: Ctx, args: dict[str, Any]) -> Response:
    client = _client_or_error(ctx, args)
    if isinstance(client, Response):
        return client
    grant = args["grant_type"]
    if grant == "authorization_code":
        issued = auth.redeem_auth_code(
            ctx.store, ctx.cloud.config, client.client_id,
            _required(args, "code", grant), _required(args, "redirect_uri", grant),
        )
    else:
        issued = auth.refresh(
            ctx.store, ctx.cloud.config, client.client_id, _required(args, "refresh_token", grant)
        )
    return JSONResponse(issued.to_json(), headers=_NO_STORE)


@handler("revoke")
def revoke(ctx: Ctx, args: dict[str, Any]) -> Response | None:
    client = _client_or_error(ctx, args)
    if isinstance(client, Response):
        return client
    auth.revoke(ctx.store, client.client_id, args["token"])
    return None
