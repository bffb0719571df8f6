#!/usr/bin/env python3
"""Runs inside an emulated host (its network namespace holds the server's
address): asks a server fixed greedy questions with the official OpenAI client
and prints the answers as one JSON line, for the test to compare between
servers. With --stream-until-end it instead starts one long streaming
completion, prints FIRST once the first chunk has arrived, and at the end a
JSON summary of how the stream ended (error events, [DONE], exception).

    openai_probe.py URL MODEL [--stream-until-end]
"""
import http.client
import json
import sys
import time
import urllib.parse

import openai

PROMPT = "The three primary colours are"
CHAT = [{"role": "user", "content": "Name one planet of the solar system."}]


def answers(client, model):
    out = {}
    r = client.completions.create(model=model, prompt=PROMPT, max_tokens=16, temperature=0)
    out["completion"] = r.choices[0].text
    out["completion_usage"] = [r.usage.prompt_tokens, r.usage.completion_tokens]
    parts, usage = [], None
    for ch in client.completions.create(model=model, prompt=PROMPT, max_tokens=16, temperature=0, stream=True,
                                        stream_options={"include_usage": True}):
        if ch.choices:
            parts.append(ch.choices[0].text)
        if ch.usage:
            usage = [ch.usage.prompt_tokens, ch.usage.completion_tokens]
    out["stream"] = "".join(parts)
    out["stream_usage"] = usage
    r = client.chat.completions.create(model=model, messages=CHAT, max_tokens=12, temperature=0)
    out["chat"] = r.choices[0].message.content
    r = client.completions.create(model=model, prompt=[PROMPT, "1, 2, 3,"], max_tokens=8, temperature=0, n=2)
    out["batch_n2"] = sorted((c.index, c.text) for c in r.choices)
    return out


def stream_until_end(url, model):
    summary = {"errors": [], "done": False, "chunks": 0, "ended": None}
    t0 = time.time()
    try:
        u = urllib.parse.urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("POST", u.path + "/completions", json.dumps(
            {"model": model, "prompt": "A long story:", "max_tokens": 4000, "temperature": 0, "stream": True,
             "ignore_eos": True}), {"Content-Type": "application/json"})
        r = conn.getresponse()
        summary["status"] = r.status
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            if payload == "[DONE]":
                summary["done"] = True
                continue
            ev = json.loads(payload)
            if "error" in ev:
                summary["errors"].append(ev["error"])
                summary["t_error"] = time.time()
            else:
                summary["chunks"] += 1
                if summary["chunks"] == 1:
                    print("FIRST", flush=True)
        summary["ended"] = "eof"
    except Exception as e:  # a reset or a timed-out read both end it
        summary["ended"] = "%s: %s" % (type(e).__name__, e)
    summary["t_end"] = time.time()
    summary["seconds"] = summary["t_end"] - t0
    print(json.dumps(summary), flush=True)


def main():
    url, model = sys.argv[1], sys.argv[2]
    if "--stream-until-end" in sys.argv:
        stream_until_end(url, model)
        return
    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=60)
    print(json.dumps(answers(client, model)), flush=True)


if __name__ == "__main__":
    main()
