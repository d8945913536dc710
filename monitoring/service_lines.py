"""The Services page's sentences about each service's configuration, its model and who polls it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"


def sign_in_caption(method: str, access) -> str:
    """How users sign in and who has which role (once sign-in is configured).

    Parameters
    ----------
    method : {"oidc", "password"}
        ``dashboard.access.sign_in_method``.
    access : AccessConfig
        The configuration's ``[access]``.

    Returns
    -------
    str
    """
    how = "OpenID Connect" if method == "oidc" else "user name and password"
    return (f"Sign-in: {how}. Roles from `[access]`: admins {_names(access.admins)}; analysts "
            f"{_names(access.analysts)}; viewers {_names(access.viewers)} (\"*\" is anyone signed in).")


def connection_lines(service) -> str:
    """The Markdown lines of how a service is reached: protocol, address, poll interval, timeouts and retries.

    Parameters
    ----------
    service : ServiceConfig

    Returns
    -------
    str
    """
    return (f"**Protocol** `{service.protocol}`  \n**URL** {service.url}  \n"
            f"**Poll interval** {service.poll_interval:g} s · **timeouts** {service.timeout:g} s "
            f"(health), {service.predict_timeout:g} s (predict) · **retries** {service.retries} (GET)")


def poller_text(holder: str | None, *, mine: bool) -> str:
    """Who polls a service: ``"this dashboard"``, ``"another collector (host:123)"`` or ``"nobody yet"``.

    Parameters
    ----------
    holder : str or None
        The holder of the service's lease in the store; None when nobody holds it.
    mine : bool
        Whether the holder is this dashboard's collector.

    Returns
    -------
    str
    """
    if mine:
        return "this dashboard"
    return f"another collector ({holder})" if holder else "nobody yet"


def metadata_lines(meta: Mapping[str, str | None]) -> str:
    """The Markdown lines of what a server says about its model: name, version, platform and declared inputs.

    Parameters
    ----------
    meta : mapping
        ``name``, ``version``, ``platform`` and ``inputs`` (each may be empty or None).

    Returns
    -------
    str
    """
    return (f"**Model** {meta['name'] or '–'}  \n**Version** {meta['version'] or 'not reported'}  \n"
            f"**Platform** {meta['platform'] or '–'}  \n"
            f"**Inputs declared by the server** {meta['inputs'] or 'none'}")


def unknown_personal_warning(unknown: Sequence[str], *, features: Sequence[str]) -> str:
    """The warning for ``personal`` names that are neither a feature nor a logged column: nothing is masked for them.

    Parameters
    ----------
    unknown : sequence of str
        ``monitoring.privacy.unknown_columns``.
    features : sequence of str
        The service's features, to compare the spelling with.

    Returns
    -------
    str
    """
    return (f"`personal` names {', '.join(unknown)}, which is neither a feature nor a logged column of this service, "
            f"so nothing is masked for it: check the spelling (features: {_names(features)}).")


def metrics_caption(metrics) -> str:
    """Where a service's traffic metrics come from and which series are named.

    Parameters
    ----------
    metrics : MetricsConfig
        The service's ``[services.metrics]``.

    Returns
    -------
    str
        ``"Metrics scraped from http://… (requests `x`, latency `y`)"``, ``"Metrics read from Prometheus at …"``;
        without named series, the exporters whose names are recognised.
    """
    named = ", ".join(f"{key} `{value}`" for key, value in (("requests", metrics.requests),
                                                             ("latency", metrics.latency)) if value)
    how = "scraped from " if metrics.url else "read from "
    return (f"Metrics {how}{metrics.source} ("
            + (named or "names recognised: prometheus_client, MLServer, KServe or Triton") + ")")


def poll_lines(*, poller: str, last_poll: str | None, state: str | None = None, reason: str = "") -> str:
    """The Markdown lines of who polls a service and how its last poll went.

    Parameters
    ----------
    poller : str
        :func:`poller_text`.
    last_poll : str or None
        When the last poll ran, as the page shows times (e.g. ``"14:02:10 UTC (3 min ago)"``);
        None when this dashboard has not polled it yet.
    state : str, optional
        The last poll's outcome (``"up"``, ``"down"``, ...).
    reason : str, default=""
        Its reason, already masked and escaped for Markdown.

    Returns
    -------
    str
    """
    polled = f"**Polled by** {poller}  \n"
    if last_poll is None:
        return polled + "**Last poll** –"
    return polled + f"**Last poll** {last_poll}: {state} \\({reason}\\)"
