#!/usr/bin/python3
"""gst-mediamtx benchmarks: Markdown tables (stdout) and PNG plots from mtx-bench CSV output.

Usage: plot.py RESULTS_DIR PLOTS_DIR   (RESULTS_DIR holds latency.csv, ttff.csv, recovery.csv,
cost.csv, ttff_fresh.csv, cert.csv as written by `mtx-bench --out=DIR`, see tests/bench/run.sh, or the
adapt_*.csv of `mtx-bench adapt`, see tests/bench/adapt.sh)
"""
import csv
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    i = p / 100 * (len(v) - 1)
    lo, hi = int(i), min(int(i) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (i - lo)


def fmt(x):
    return "n/a" if x != x else f"{x:.0f}"


def latency(rows, plots):
    groups = {}
    for r in rows:
        key = (r["publisher"], r["viewer"], int(r["latency_ms"]), int(r["height"]))
        g = groups.setdefault(key, {"decoded": [], "display": []})
        g["decoded"].append(float(r["decoded_ms"]))
        g["display"].append(float(r["display_ms"]))
    if not groups:
        return
    print("## Glass-to-glass latency (ms)\n")
    print("| publisher | viewer | latency | picture | frames | after decoder p50 / p95 / p99 "
          "| at display p50 / p95 / p99 | display p50 - latency |")
    print("|---|---|---:|---|---:|---|---|---:|")
    for (pub, view, lat, h), g in sorted(groups.items(), key=lambda kv: (kv[0][3], kv[0][2], kv[0][1], kv[0][0])):
        d, s = g["decoded"], g["display"]
        print(f"| mediamtxsink {pub} | {view} | {lat} | {h}p30 | {len(s)} | "
              f"{fmt(pct(d, 50))} / {fmt(pct(d, 95))} / {fmt(pct(d, 99))} | "
              f"{fmt(pct(s, 50))} / {fmt(pct(s, 95))} / {fmt(pct(s, 99))} | {fmt(pct(s, 50) - lat)} |")
    print()

    # p50 and p99 at the display against configured latency, one line per publisher/viewer
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for pub, view in sorted({(k[0], k[1]) for k in groups if k[3] == 720}):
        lats = sorted(k[2] for k in groups if k[:2] == (pub, view) and k[3] == 720)
        p50 = [pct(groups[(pub, view, lat, 720)]["display"], 50) for lat in lats]
        p99 = [pct(groups[(pub, view, lat, 720)]["display"], 99) for lat in lats]
        line, = ax.plot(lats, p50, marker="o", label=f"{pub} -> {view} p50")
        ax.plot(lats, p99, marker="x", linestyle="--", color=line.get_color(), label=f"{pub} -> {view} p99")
    lat_axis = sorted({k[2] for k in groups})
    ax.plot(lat_axis, lat_axis, color="grey", linewidth=0.8, label="configured latency")
    ax.set_ylim(0, 320)
    ax.text(0.01, 0.97, "clipped at 320 ms: see the table for larger values", transform=ax.transAxes,
            fontsize=7, va="top")
    ax.set_xlabel("configured jitter-buffer latency (ms)")
    ax.set_ylabel("glass-to-glass at a sync=true sink (ms)")
    ax.set_title("720p30 2 Mbit/s through MediaMTX (veth, same machine)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "latency-sweep.png"), dpi=110)
    plt.close(fig)

    # CDF at latency 50
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (pub, view, lat, h), g in sorted(groups.items()):
        if lat != 50:
            continue
        for where, style in (("display", "-"), ("decoded", ":")):
            v = sorted(g[where])
            ax.plot(v, [i / len(v) for i in range(len(v))], style, label=f"{pub} -> {view} {h}p {where}")
    ax.set_xlim(0, 200)
    ax.set_xlabel("glass-to-glass latency (ms), latency=50 (x clipped at 200)")
    ax.set_ylabel("fraction of frames")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "latency-cdf-50.png"), dpi=110)
    plt.close(fig)


def ttff(rows, plots):
    groups = {}
    for r in rows:
        if float(r["total_ms"]) < 0:
            continue
        groups.setdefault((r["viewer"], float(r["keyint_s"])), []).append(r)
    if not groups:
        return
    print("## Time to first frame (ms, from PLAYING)\n")
    print("| viewer | keyframe interval | starts | total p50 / p95 / max | HTTP answer p50 "
          "| ICE+DTLS connected p50 / p95 | keyframe wait p50 / p95 / max |")
    print("|---|---:|---:|---|---:|---|---|")
    labels, answer, connect, wait = [], [], [], []
    for (view, k), rs in sorted(groups.items()):
        t = [float(r["total_ms"]) for r in rs]
        a = [float(r["answer_ms"]) for r in rs if float(r["answer_ms"]) >= 0]
        c = [float(r["connected_ms"]) for r in rs if float(r["connected_ms"]) >= 0]
        w = [float(r["keyframe_wait_ms"]) for r in rs if float(r["keyframe_wait_ms"]) >= 0]
        print(f"| {view} | {k:g} s | {len(rs)} | {fmt(pct(t, 50))} / {fmt(pct(t, 95))} / {fmt(max(t))} | "
              f"{fmt(pct(a, 50))} | {fmt(pct(c, 50))} / {fmt(pct(c, 95))} | "
              f"{fmt(pct(w, 50))} / {fmt(pct(w, 95))} / {fmt(max(w) if w else float('nan'))} |")
        if view == "whepsrc":
            labels.append(f"{k:g} s")
            answer.append(statistics.median(a) if a else 0)
            connect.append(statistics.median(c) - statistics.median(a) if c and a else 0)
            wait.append(statistics.median(w) if w else 0)
    print()
    if labels:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(labels, answer, label="offer + HTTP answer")
        ax.bar(labels, connect, bottom=answer, label="ICE + DTLS connected")
        ax.bar(labels, wait, bottom=[a + c for a, c in zip(answer, connect)], label="wait for keyframe + decode")
        ax.set_xlabel("publisher keyframe interval")
        ax.set_ylabel("median time (ms) from PLAYING")
        ax.set_title("whepsrc time to first decoded frame (medians)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(plots, "ttff.png"), dpi=110)
        plt.close(fig)


def recovery(rows):
    if not rows:
        return
    print("## Recovery after a MediaMTX kill -9 and restart (ms)\n")
    r0 = rows[0]
    print(f"Outage {r0['outage_ms']} ms; retry-delay = max-retry-delay = {r0['retry_delay_ms']} ms on both "
          f"elements; whepsrc timeout {r0['viewer_timeout_ms']} ms; keyframe every {r0['keyint_frames']} frames.\n")
    print("| measure | runs | p50 | max |")
    print("|---|---:|---:|---:|")
    for key, what in (("viewer_noticed_ms", "viewer reported reconnecting (from the kill)"),
                      ("api_up_ms", "server process start -> API answers"),
                      ("path_ready_ms", "server start -> publisher's path ready"),
                      ("first_frame_ms", "server start -> first new frame at the viewer")):
        v = [float(r[key]) for r in rows if float(r[key]) >= 0]
        print(f"| {what} | {len(v)} | {fmt(pct(v, 50))} | {fmt(max(v) if v else float('nan'))} |")
    print()


def cost(rows, plots):
    if not rows:
        return
    print("## Cost (CPU in % of one core, measured by each process over its window; peak RSS)\n")
    print("| what | count | CPU per process | CPU all processes | MediaMTX CPU | peak RSS (MiB) "
          "| min frames / expected | no frame loss | Mbit/s per viewer |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        server = float(r["server_cpu_pct"])
        print(f"| {r['what']} | {r['count']} | {float(r['per_process_cpu_pct_mean']):.1f} | "
              f"{float(r['total_cpu_pct']):.1f} | {'' if server < 0 else f'{server:.1f}'} | "
              f"{int(r['peak_rss_kib_max']) / 1024:.0f} | {r['frames_min']} / {float(r['expected']):.0f} | "
              f"{'yes' if r['lossless'] == '1' else 'NO'} | {float(r['mbps']):.2f} |")
    print()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for what, label in (("viewer_encoded", "decode=false"), ("viewer_decoded", "decoded")):
        rs = [r for r in rows if r["what"] == what]
        if not rs:
            continue
        n = [int(r["count"]) for r in rs]
        line, = ax.plot(n, [float(r["total_cpu_pct"]) for r in rs], marker="o", label=f"{label}: viewers")
        ax.plot(n, [float(r["total_cpu_pct"]) + max(0.0, float(r["server_cpu_pct"])) for r in rs], marker="x",
                linestyle="--", color=line.get_color(), label=f"{label}: viewers + MediaMTX")
        for r in rs:
            if r["lossless"] != "1":
                ax.annotate("loss", (int(r["count"]), float(r["total_cpu_pct"])), fontsize=7, color="red")
    ax.axhline(200, color="grey", linewidth=0.8)
    ax.set_xlabel("concurrent whepsrc viewers (separate processes), 720p30 2 Mbit/s")
    ax.set_ylabel("CPU (% of one core; 2 cores = 200)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "cost-viewers.png"), dpi=110)
    plt.close(fig)


ADAPT_NAMES = {
    "rtsp-off": "mediamtxsink RTSP/TCP, adaptation off",
    "rtsp-on": "mediamtxsink RTSP/TCP, adaptation on",
    "whip-off": "mediamtxsink WHIP, adaptation off",
    "whip-on": "mediamtxsink WHIP, adaptation on",
    "whip-on-nortx": "mediamtxsink WHIP, adaptation on, no retransmission",
    "whipclientsink": "whipclientsink (gst-plugins-rs, GCC)",
}


def num(x):
    try:
        v = float(x)
    except ValueError:
        return float("nan")
    return v


def adapt(steps, series, rec, plots):
    if not steps:
        return
    configs = list(dict.fromkeys(r["config"] for r in steps))
    print("## Bandwidth adaptation: per step (whole step)\n")
    print("| publisher | uplink limit | frames shown / readable (of expected) | readable | p50 / p95 glass-to-glass "
          "(ms) | freezes > 500 ms (longest, ms) | uplink kbit/s | target kbit/s |")
    print("|---|---:|---|---:|---|---|---:|---:|")
    for window in ("all", "settled"):
        if window == "settled":
            print("\n## Bandwidth adaptation: per step, settled (from SETTLE_S into each step)\n")
            print("| publisher | uplink limit | frames shown / readable (of expected) | readable | p50 / p95 "
                  "glass-to-glass (ms) | freezes > 500 ms (longest, ms) | uplink kbit/s | target kbit/s |")
            print("|---|---:|---|---:|---|---|---:|---:|")
        for c in configs:
            for r in (r for r in steps if r["config"] == c and r["window"] == window):
                exp = int(r["expected"])
                readable = int(r["readable"])
                pct_readable = 100 * readable / exp if exp else float("nan")
                target = num(r["target_kbps"])
                print(f"| {ADAPT_NAMES.get(c, c)} | {r['limit_kbps']} | {r['shown']} / {readable} ({exp}) | "
                      f"{pct_readable:.0f} % | {fmt(num(r['p50_ms']))} / {fmt(num(r['p95_ms']))} | "
                      f"{r['freezes']} ({fmt(num(r['longest_gap_ms']))}) | {fmt(num(r['uplink_kbps']))} | "
                      f"{'n/a' if target != target else fmt(target)} |")
    print()
    if rec:
        print("## Bandwidth adaptation: after the limit lifts (s; -1: not within the step)\n")
        print("| publisher | uplink before the cut (kbit/s) | uplink back to 90 % | target back to 95 % of bitrate "
              "| picture back (p95 <= 400 ms, >= 24 readable frames/s) |")
        print("|---|---:|---:|---:|---:|")
        for r in rec:
            print(f"| {ADAPT_NAMES.get(r['config'], r['config'])} | {fmt(num(r['baseline_uplink_kbps']))} | "
                  f"{num(r['uplink_recover_s']):.0f} | {num(r['target_recover_s']):.0f} | "
                  f"{num(r['picture_recover_s']):.0f} |")
        print()
    if not series:
        return
    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    limit_drawn = False
    for c in configs:
        rs = [r for r in series if r["config"] == c]
        t = [num(r["t_s"]) for r in rs]
        if not limit_drawn:
            axes[0].step(t, [num(r["limit_kbps"]) for r in rs], where="pre", color="black", linewidth=1.5,
                         label="uplink limit (tc tbf)")
            limit_drawn = True
        line, = axes[0].plot(t, [num(r["uplink_kbps"]) for r in rs], label=f"{c}: uplink")
        target = [num(r["target_kbps"]) for r in rs]
        if not c.endswith("-off") and any(x >= 0 for x in target):  # "off": the fixed bitrate
            axes[0].plot(t, [x if x >= 0 else float("nan") for x in target], linestyle="--",
                         color=line.get_color(), label=f"{c}: target")
        axes[1].plot(t, [num(r["p95_ms"]) for r in rs], color=line.get_color(), label=c)
        axes[2].plot(t, [int(r["readable"]) for r in rs], color=line.get_color(), label=c)
    axes[0].set_ylabel("kbit/s")
    axes[0].set_title("720p30 publisher, uplink stepping (tc tbf); one sample a second")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set_yscale("log")
    axes[1].axhline(400, color="grey", linewidth=0.8)
    axes[1].set_ylabel("p95 glass-to-glass in the second (ms)")
    axes[2].axhline(24, color="grey", linewidth=0.8)
    axes[2].set_ylabel("readable frames shown per second")
    axes[2].set_xlabel("seconds from the first step")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "adapt.png"), dpi=110)
    plt.close(fig)


def ttff_fresh(rows, plots):
    """Fresh viewer processes (mtx-bench ttff-fresh) and Chromium's reader page, same run."""
    if not rows:
        return
    print("## Time to first frame of a fresh viewer process (ms)\n")
    print("| client | keyframe interval | keyframe-on-join | starts | from process start p50 / p95 / max "
          "| from PLAYING (page: navigation) p50 / p95 / max | offer created p50 | ICE+DTLS connected p50 |")
    print("|---|---:|---|---:|---|---|---:|---:|")
    groups = {}
    for r in rows:
        groups.setdefault((r["client"], float(r["keyint_s"]), r["keyframe_on_join"]), []).append(r)
    order = sorted(groups, key=lambda g: (g[1], g[2], g[0] != "whepsrc"))
    for key in order:
        rs = groups[key]
        proc = [float(r["from_process_ms"]) for r in rs]
        play = [float(r["from_playing_ms"]) for r in rs]
        offer = [float(r["offer_ms"]) for r in rs if float(r["offer_ms"]) >= 0]
        conn = [float(r["connected_ms"]) for r in rs if float(r["connected_ms"]) >= 0]
        client = "whepsrc (gst-launch-like process)" if key[0] == "whepsrc" else "Chromium, MediaMTX reader page"
        print(f"| {client} | {key[1]:g} s | {key[2]} | {len(rs)} | "
              f"{fmt(pct(proc, 50))} / {fmt(pct(proc, 95))} / {fmt(max(proc))} | "
              f"{fmt(pct(play, 50))} / {fmt(pct(play, 95))} / {fmt(max(play))} | "
              f"{fmt(pct(offer, 50))} | {fmt(pct(conn, 50))} |")
    print()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    keyints = sorted({k[1] for k in groups})
    series = [("whepsrc", "false"), ("whepsrc", "true"), ("chromium", "false"), ("chromium", "true")]
    width = 0.2
    for i, (client, join) in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for j, k in enumerate(keyints):
            rs = groups.get((client, k, join))
            if not rs:
                continue
            play = [float(r["from_playing_ms"]) for r in rs]
            xs.append(j + (i - 1.5) * width)
            ys.append(pct(play, 50))
            lo.append(pct(play, 50) - min(play))
            hi.append(pct(play, 95) - pct(play, 50))
        if xs:
            label = ("whepsrc" if client == "whepsrc" else "Chromium reader page") + \
                (", keyframe-on-join" if join == "true" else "")
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=label)
    ax.axhline(250, color="red", linewidth=0.8, linestyle="--", label="target p50 250 ms")
    ax.set_xticks(range(len(keyints)), [f"{k:g} s" for k in keyints])
    ax.set_xlabel("publisher keyframe interval")
    ax.set_ylabel("ms to first frame (p50; bars min..p95)")
    ax.set_title("from PLAYING (Chromium: from navigation start)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(plots, "ttff-fresh.png"), dpi=110)
    plt.close(fig)


def cert(rows):
    if not rows:
        return
    print("## DTLS certificate cost in a fresh process (ms)\n")
    print("| certificate | runs | p50 | p95 | max |")
    print("|---|---:|---:|---:|---:|")
    for mode, what in (("stock", "stock: the first dtlsdec generates RSA-2048"),
                       ("ours", "gst-mediamtx: cached default key + ECDSA P-256")):
        v = [float(r["ms"]) for r in rows if r["mode"] == mode]
        if v:
            print(f"| {what} | {len(v)} | {pct(v, 50):.1f} | {pct(v, 95):.1f} | {max(v):.1f} |")
    print()


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 1)
    results, plots = sys.argv[1], sys.argv[2]
    os.makedirs(plots, exist_ok=True)
    latency(read(os.path.join(results, "latency.csv")), plots)
    ttff(read(os.path.join(results, "ttff.csv")), plots)
    recovery(read(os.path.join(results, "recovery.csv")))
    cost(read(os.path.join(results, "cost.csv")), plots)
    adapt(read(os.path.join(results, "adapt_steps.csv")), read(os.path.join(results, "adapt_series.csv")),
          read(os.path.join(results, "adapt_recovery.csv")), plots)
    ttff_fresh(read(os.path.join(results, "ttff_fresh.csv")), plots)
    cert(read(os.path.join(results, "cert.csv")))


if __name__ == "__main__":
    main()
