"""The chat page in a real browser: headless Chromium loads it from a running
`parallama serve`, sends a message through the page (the ?autotest= hook types
it into the conversation as the Send button would), and the streamed reply it
shows must equal the non-streamed answer of /v1/chat/completions to the same
request. A screenshot is left in build/release/test_tmp/chat_page.png.
Exit status 77 (skipped) only when no Chromium is installed.
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from openai_client_test import ROOT, Server  # noqa: E402

chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if not chromium:
    print("SKIPPED: no chromium binary (apt-get install chromium)")
    sys.exit(77)

server = Server()
ok = False
try:
    text = "Name three colors."
    query = urllib.parse.urlencode({"temperature": 0, "max_tokens": 24, "autotest": text})
    url = f"{server.url}/?{query}"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000"]
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=90).stdout
    msgs = [(role, html.unescape(body)) for role, body in
            re.findall(r'<div class="msg (user|assistant|error)">(.*?)</div>', dom, re.S)]
    body = {"model": server.model, "messages": [{"role": "user", "content": text}], "temperature": 0,
            "top_p": 0.95, "max_tokens": 24}
    req = urllib.request.Request(server.url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    want = json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["message"]["content"]
    model = re.search(r'<span class="model" id="model">(.*?)</span>', dom, re.S)
    print("page messages:", msgs)
    print("direct answer:", repr(want))
    assert msgs[:1] == [("user", text)], msgs
    assert len(msgs) == 2 and msgs[1][0] == "assistant", msgs
    assert msgs[1][1] == want, (msgs[1][1], want)
    assert model and server.model in model.group(1), model
    assert 'data-state="idle"' in dom
    shot = os.path.join(ROOT, "build", "release", "test_tmp", "chat_page.png")
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    subprocess.run(flags + ["--window-size=1100,640", f"--screenshot={shot}", url], capture_output=True, timeout=90)
    assert os.path.getsize(shot) > 10000, "screenshot missing"
    print("screenshot:", shot)
    ok = True
finally:
    server.stop()
sys.exit(0 if ok else 1)
