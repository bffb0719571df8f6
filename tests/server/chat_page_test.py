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
    # --dump-dom takes the DOM when the virtual-time budget runs out, which on a
    # loaded machine can fall inside the stream: retry with a larger budget until
    # the page says it is idle again.
    for budget in (20000, 60000, 180000, 600000):
        flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--virtual-time-budget={budget}"]
        dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        if 'data-state="idle"' in dom and 'class="msg assistant"' in dom:
            break
        print(f"page not idle after a {budget} ms budget; again")
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
