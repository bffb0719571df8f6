#!/usr/bin/python3
"""The chat page (src/server/assets/chat.html) in a real browser.

A `parallama serve` on 127.0.0.1 serves the page; headless Chromium loads it
and is driven over the DevTools protocol (--remote-debugging-port, a small
websocket client below, Python standard library only): the test types into
#input with real key events, sends with Enter and with a mouse click on #send,
waits for <body data-state="idle">, and checks that

  * every streamed reply the page shows equals the non-streamed answer of
    POST /v1/chat/completions to the same conversation and settings
    (temperature 0, from the page's URL query), follow-up turns included;
  * the live panel shows the model name and numbers from /metrics;
  * Stop aborts a running reply (the server sees the request go), an API
    error shows in the conversation with the server's message, and a turn
    that failed is left out of the next request;
  * text is shown as text (no element made from a message).

A screenshot is left in build/release/test_tmp/chat_page.png.
Exit status 77 (skipped) only when no Chromium binary is installed.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("PARALLAMA_BINARY", os.path.join(ROOT, "build", "release", "parallama"))
SHOT = os.path.join(ROOT, "build", "release", "test_tmp", "chat_page.png")
SETTINGS = {"temperature": 0, "top_p": 0.95, "max_tokens": 24, "system": "You are a helpful assistant."}


class Server:
    """`parallama serve --port 0` on 127.0.0.1 (the default model), stopped with SIGTERM."""

    def __init__(self):
        self.proc = subprocess.Popen([BINARY, "serve", "--port", "0", "-t", "2"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("server exited before it was ready:\n" + "".join(self.log))
            self.log.append(line)
            m = re.search(r"ready: (http://127\.0\.0\.1:\d+)/v1 serves '([^']+)'", line)
            if m:
                self.url, self.model = m.group(1), m.group(2)
                break
        else:
            raise RuntimeError("server not ready in 60 s")
        threading.Thread(target=lambda: [self.log.append(l) for l in self.proc.stderr], daemon=True).start()

    def request(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def chat(self, messages, **settings):
        body = {"model": self.model, "messages": messages, **settings}
        status, text = self.request("/v1/chat/completions", body)
        return status, json.loads(text)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        assert rc == 0, "server exit status %d:\n%s" % (rc, "".join(self.log[-20:]))


class WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: text frames, client masking, fragments, ping."""

    def __init__(self, url, timeout=30):
        u = urllib.parse.urlparse(url)
        assert u.hostname == "127.0.0.1", url
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: 127.0.0.1:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if b" 101 " not in head.split(b"\r\n")[0] or accept not in head:
            raise ConnectionError("websocket handshake refused: " + head.decode(errors="replace"))

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text, opcode=1):
        data = text.encode() if isinstance(text, str) else text
        n = len(data)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._exact(2), "big")
            elif n == 127:
                n = int.from_bytes(self._exact(8), "big")
            mask = self._exact(4) if b1 & 0x80 else None
            payload = self._exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 9:
                self.send(payload, opcode=10)
                continue
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    return message.decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws):
        self.ws, self.next_id = ws, 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:  # anything else is an event, not asked for
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expression, what, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(expression):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; page: {self.state()}")

    def state(self):
        return self.js("""({state: document.body.dataset.state, model: document.getElementById('model').textContent,
            messages: [...document.querySelectorAll('#messages .msg')].map(e => [e.className, e.textContent])})""")

    def key(self, key, code, vk, modifiers=0, text=None):
        down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk, "modifiers": modifiers}
        if text:
            down["text"] = text
        self.call("Input.dispatchKeyEvent", **down)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=vk,
                  modifiers=modifiers)

    def type(self, text):
        self.js("document.getElementById('input').focus()")
        self.call("Input.insertText", text=text)

    def click(self, selector):
        r = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                    " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=r[0], y=r[1], button="left", clickCount=1)

    def set_field(self, id_, value):
        self.js(f"document.getElementById({json.dumps(id_)}).value = {json.dumps(str(value))}")

    def assistants(self):
        return self.js("[...document.querySelectorAll('#messages .msg.assistant')].map(e => e.textContent)")

    def send_and_wait(self, text, how, timeout=90):
        n = len(self.assistants())
        self.type(text)
        if how == "enter":
            self.key("Enter", "Enter", 13)
        else:
            self.click("#send")
        self.wait(f"document.body.dataset.state === 'idle' && document.getElementById('input').value === '' &&"
                  f" document.querySelectorAll('#messages .msg').length > {n}", f"the reply to {text!r}", timeout)


def start_chromium(chromium, profile):
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
            "--no-pings", "--mute-audio", "--hide-scrollbars", "--window-size=1100,680",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "about:blank"]
    log = open(os.path.join(profile, "..", "chromium.log"), "w")
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}")
        try:
            with open(port_file) as f:
                port = int(f.readline())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            if pages:
                return proc, pages[0]["webSocketDebuggerUrl"]
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError("chromium's DevTools endpoint did not come up in 30 s")


def stop_chromium(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the browser and its helper processes, which we started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def metric(text, name):
    m = re.search(r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)", text, re.M)
    return float(m.group(1)) if m else None


def run(server, page):
    s = SETTINGS
    url = server.url + "/?" + urllib.parse.urlencode(s)
    page.call("Emulation.setDeviceMetricsOverride", width=1100, height=680, deviceScaleFactor=1, mobile=False)
    page.call("Page.navigate", url=url)
    page.wait(f"document.readyState === 'complete' && document.getElementById('model').textContent === "
              f"{json.dumps(server.model)}", "the model name in the live panel", 30)
    page.wait("/tok\\/s$/.test(document.getElementById('tps').textContent) &&"
              " /^\\d+$/.test(document.getElementById('running').textContent) &&"
              " /^\\d+$/.test(document.getElementById('waiting').textContent) &&"
              " /%$/.test(document.getElementById('kv').textContent)", "numbers from /metrics", 15)
    assert page.js("document.getElementById('ctx').textContent").endswith(" tokens")
    for k, v in s.items():
        assert page.js(f"document.getElementById('{k}').value") == str(v), k
    settings = {k: s[k] for k in ("temperature", "top_p", "max_tokens")}
    convo = [{"role": "system", "content": s["system"]}]

    # Shift+Enter is a new line, not a send.
    page.type("one")
    page.key("Enter", "Enter", 13, modifiers=8, text="\r")
    assert page.js("document.getElementById('input').value") == "one\n", "Shift+Enter did not add a line"
    assert page.js("document.querySelectorAll('#messages .msg').length") == 0, "Shift+Enter sent the message"
    page.set_field("input", "")

    # Two turns, sent with Enter and with the Send button; each reply as the API gives it.
    for text, how in (("Name three colors.", "enter"), ("Which of them is <b>warmest</b>? & why", "click")):
        page.send_and_wait(text, how)
        convo.append({"role": "user", "content": text})
        status, want = server.chat(convo, **settings)
        assert status == 200, want
        want = want["choices"][0]["message"]["content"]
        got = page.assistants()[-1]
        print(f"{text!r}\n  page: {got!r}\n  api:  {want!r}")
        assert got and got == want, (got, want)
        convo.append({"role": "assistant", "content": want})
    msgs = page.js("[...document.querySelectorAll('#messages .msg')].map(e => [e.className, e.textContent,"
                   " e.childElementCount])")
    assert [m[0] for m in msgs] == ["msg user", "msg assistant"] * 2, msgs
    assert [m[1] for m in msgs] == [c["content"] for c in convo[1:]], msgs
    assert all(m[2] == 0 for m in msgs), "a message was rendered as HTML"

    os.makedirs(os.path.dirname(SHOT), exist_ok=True)
    png = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    with open(SHOT, "wb") as f:
        f.write(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000, "screenshot missing"
    print("screenshot:", SHOT)

    # New chat empties the conversation; Stop ends a long reply, and the server lets the request go.
    page.click("#new")
    page.wait("document.querySelectorAll('#messages .msg').length === 0", "an empty conversation", 5)
    page.set_field("max_tokens", 2000)
    long_ask = "Write a very long story about a dragon."  # at temperature 0 it runs to max_tokens
    page.type(long_ask)
    page.key("Enter", "Enter", 13)
    page.wait("document.body.dataset.state === 'streaming' &&"
              " (document.querySelector('.msg.assistant') || {}).textContent", "the first streamed tokens", 60)
    page.click("#stop")
    page.wait("document.body.dataset.state === 'idle'", "Stop", 10)
    msgs = page.js("[...document.querySelectorAll('#messages .msg')].map(e => [e.className, e.textContent])")
    assert [m[0] for m in msgs] == ["msg user", "msg assistant stopped"], msgs
    partial = msgs[1][1]
    assert partial, msgs
    deadline = time.time() + 15
    while metric(server.request("/metrics")[1], "parallama:num_requests_running") != 0:
        assert time.time() < deadline, "the stopped request still runs on the server"
        time.sleep(0.2)

    # An API error (max_tokens 0 is refused) shows with the server's own message; the failed turn is dropped.
    page.set_field("max_tokens", 0)
    page.send_and_wait("This one fails.", "enter")
    kept = convo[:1] + [{"role": "user", "content": long_ask}, {"role": "assistant", "content": partial}]
    status, err = server.chat(kept + [{"role": "user", "content": "This one fails."}], **{**settings, "max_tokens": 0})
    assert status == 400, err
    msgs = page.js("[...document.querySelectorAll('#messages .msg')].map(e => [e.className, e.textContent])")
    print("error shown:", msgs[-1])
    assert msgs[-2:] == [["msg user failed", "This one fails."], ["msg error", "Error: " + err["error"]["message"]]], msgs

    # The next turn goes with the stopped partial reply and without the failed one.
    page.set_field("max_tokens", 24)
    page.send_and_wait("Thanks!", "click")
    status, want = server.chat(kept + [{"role": "user", "content": "Thanks!"}], **settings)
    assert status == 200, want
    got = page.assistants()[-1]
    assert got == want["choices"][0]["message"]["content"], (got, want)
    assert page.js("document.querySelectorAll('#messages .msg.error').length") == 1


def main():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("SKIPPED: no chromium binary on PATH (Debian: apt-get install chromium)")
        return 77
    # Bounded in time whatever hangs: the alarm raises here and the finally blocks stop both processes.
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("chat page test over 150 s")))
    signal.alarm(150)
    tmp = tempfile.mkdtemp(prefix="chat_page_")
    profile = os.path.join(tmp, "profile")
    os.makedirs(profile)
    server = Server()
    try:
        browser, ws_url = start_chromium(chromium, profile)
        ws = None
        try:
            ws = WebSocket(ws_url)
            run(server, Page(ws))
        except BaseException:
            with open(os.path.join(tmp, "chromium.log")) as f:
                print("chromium log (tail):\n" + "".join(f.readlines()[-20:]))
            raise
        finally:
            if ws:
                ws.close()
            stop_chromium(browser)
    finally:
        try:
            server.stop()
        finally:
            signal.alarm(0)
            shutil.rmtree(tmp, ignore_errors=True)
    print("chat page: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
