"""The [server] settings of .streamlit/config.toml on a served app: it listens on this machine only,
the upload cap, through the real upload widget and on the upload endpoint, and XSRF protection of
that endpoint; and [client] keeps error details from the browser."""

import io
import ipaddress
import os
import re
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from support import ROOT
from support.browser import wait_until
from support.drawings import render_like_canvas

CONFIG = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
SERVER = CONFIG["server"]
CAP_MB = SERVER["maxUploadSize"]
MB = 1024 * 1024  # Streamlit's megabyte, in the widget and on the server
UPLOAD = "/_stcore/upload_file/"  # + <session id>/<file id>: PUT stores a file, DELETE drops it


def test_the_config_caps_uploads_to_a_digit_photo_and_turns_xsrf_protection_on():
    assert SERVER["enableXsrfProtection"] is True  # explicit, not left to Streamlit's default
    assert isinstance(CAP_MB, int) and 1 <= CAP_MB <= 10  # a phone photo of a digit is 1-4 MB


def test_the_config_keeps_error_details_and_the_app_off_the_network():
    assert CONFIG["client"]["showErrorDetails"] == "none"  # "false" would mean "stacktrace"
    assert SERVER["address"] == "127.0.0.1"


def listening(port: int) -> list[str]:
    """The local addresses of the sockets listening on `port` (Linux /proc/net/tcp and tcp6)."""
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:  # one little-endian 32-bit word
                    found.append(str(ipaddress.IPv4Address(raw[::-1])))
                else:  # four of them
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(str(ipaddress.IPv6Address(words)))
    return found


def test_the_served_app_listens_on_this_machine_only(server):
    """Served with the repository's config and no --server.address: another machine cannot reach
    it (without sign-in its visitor is the administrator); this one can."""
    with urllib.request.urlopen(server.url + "/_stcore/health", timeout=10) as resp:
        assert resp.read() == b"ok"
    assert listening(server.port) == ["127.0.0.1"]  # not 0.0.0.0, not ::


def digit_png(mnist, index: int = 0) -> bytes:
    rng = np.random.default_rng(index)
    gray = render_like_canvas(mnist.test_images[index].numpy(), rng, dark_on_light=True)
    buf = io.BytesIO()
    Image.fromarray((gray * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def prediction(page) -> str:
    metrics = page.get_by_test_id("stMetric")
    text = metrics.first.inner_text() if metrics.count() else ""
    return text.split("\n")[-1].strip() if text.startswith("Prediction") else ""


def open_upload_tab(page, server, puts: list[str]):
    """The Draw page's Upload tab; every PUT to the upload endpoint is recorded in puts."""
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" and UPLOAD in r.url else None)
    page.goto(server.url + "/draw")
    page.get_by_text("Draw a digit on the canvas").wait_for()
    page.get_by_text("ACTIVE RUNS").wait_for()  # the app's shell is up: no rerun will remount the page
    page.get_by_role("tab", name="Upload").click()
    uploader = page.get_by_test_id("stFileUploader").first
    uploader.wait_for()
    return uploader


def test_a_digit_photo_goes_through_the_upload_widget_and_is_read(page, server, mnist, tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(digit_png(mnist))
    puts: list[str] = []
    uploader = open_upload_tab(page, server, puts)
    assert f"{CAP_MB}MB per file" in uploader.inner_text()  # the widget states the served cap
    uploader.locator("input[type=file]").set_input_files(path)
    label = str(int(mnist.test_labels[0]))
    assert wait_until(lambda: prediction(page) == label or None, timeout_s=60)
    page.get_by_text("Input: digit.png").wait_for()
    assert len(puts) == 1
    assert not page.get_by_test_id("stException").count()


def test_a_file_over_the_cap_is_refused_by_the_widget_and_nothing_is_predicted(page, server, mnist, tmp_path):
    path = tmp_path / "huge.png"  # a readable digit PNG, padded past the cap (PIL ignores the tail)
    png = digit_png(mnist)
    path.write_bytes(png + os.urandom((CAP_MB + 1) * MB - len(png)))
    puts: list[str] = []
    uploader = open_upload_tab(page, server, puts)
    uploader.locator("input[type=file]").set_input_files(path)
    uploader.get_by_text(re.compile(rf"File must be {CAP_MB}(\.0)?\s?MB or smaller")).wait_for()
    page.wait_for_timeout(2000)  # time for a rerun, had the file been sent
    assert puts == []  # the widget never sent it
    assert prediction(page) in ("", "–")  # the placeholder: nothing was predicted
    page.get_by_text("Draw a digit on the canvas").wait_for()
    assert not page.get_by_test_id("stException").count()


PROBE_JS = """async ([url, big]) => {
    const token = (document.cookie.match(/(?:^|; )_streamlit_xsrf=([^;]*)/) || [])[1];
    const put = async (size, headers) => {
        const form = new FormData();
        form.append("file", new Blob([new Uint8Array(size)], {type: "image/png"}), "probe.png");
        return (await fetch(url, {method: "PUT", body: form, headers})).status;
    };
    return {
        without_token: await put(16, {}),
        with_token: await put(16, {"X-Xsrftoken": token}),
        over_cap_with_token: await put(big, {"X-Xsrftoken": token}),
    };
}"""


def test_the_upload_endpoint_of_a_live_session_wants_the_token_and_enforces_the_cap(
    page, server, mnist, tmp_path
):
    """The widget's own checks can be skipped by anyone who calls the endpoint: the server must
    refuse a request without the XSRF header (403) and a body over the cap (413) on its own."""
    path = tmp_path / "digit.png"
    path.write_bytes(digit_png(mnist))
    uploader = open_upload_tab(page, server, [])
    with page.expect_request(lambda r: r.method == "PUT" and UPLOAD in r.url) as sent:
        uploader.locator("input[type=file]").set_input_files(path)
    probe = sent.value.url.rsplit("/", 1)[0] + "/xsrf-probe"  # the live session, a file id of our own
    status = page.evaluate(PROBE_JS, [probe, CAP_MB * MB + 1])
    assert status == {"without_token": 403, "with_token": 204, "over_cap_with_token": 413}


def _status(url: str, method: str, headers: dict | None = None) -> int:
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\nx\r\n--b--\r\n'
    headers = {"Content-Type": "multipart/form-data; boundary=b", **(headers or {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method=method), timeout=10):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_upload_endpoint_refuses_requests_without_the_xsrf_cookie_and_token(server):
    url = server.url + UPLOAD + "no-such-session/some-file"
    assert _status(url, "PUT") == 403
    assert _status(url, "DELETE") == 403
    assert _status(url, "POST") == 405  # the endpoint takes PUT only
    # Control: with the cookie the server hands out and its token, the XSRF check passes and the
    # request fails later, on the made-up session (400), so the 403s above are the XSRF check.
    with urllib.request.urlopen(server.url + "/_stcore/health", timeout=10) as resp:
        cookies = [c.split(";")[0] for c in resp.headers.get_all("Set-Cookie") or []]
    cookie = next(c for c in cookies if c.startswith("_streamlit_xsrf="))
    token = cookie.split("=", 1)[1]
    assert _status(url, "PUT", {"Cookie": cookie}) == 403  # the cookie alone is not enough
    assert _status(url, "PUT", {"X-Xsrftoken": token}) == 403  # nor the token alone
    assert _status(url, "PUT", {"Cookie": cookie, "X-Xsrftoken": token}) == 400


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_forged_token_is_refused(server, method):
    url = server.url + UPLOAD + "no-such-session/some-file"
    forged = "2|00000000|" + "00" * 32 + "|1700000000"
    assert _status(url, method, {"Cookie": f"_streamlit_xsrf={forged}", "X-Xsrftoken": "2|11|22|0"}) == 403
