"""The benchmark report (``kerasflow.benchmark``'s dict) as markdown tables."""


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(seconds):
    return "-" if seconds is None else f"{1000 * seconds:.1f}"


def _x(value):
    return "-" if value is None else f"{value:.2f}x"


def markdown(report):
    env, e2e, flops = report["environment"], report["end_to_end"], report["flops"]
    paper = report["sizes"]["paper"]
    parts = [
        f"CPU: {env['cpu']} ({env['cores']} cores, {env['threads']} threads for TensorFlow/OpenCV/PyTorch, "
        f"load {env['load_average_1min']} at start); TensorFlow {env['tensorflow']}, OpenCV {env['opencv']}, "
        f"PyTorch {env['torch'] or 'not installed'}" + (" -- QUICK (tiny sizes, not a measurement)" if report["quick"] else ""),
        "",
        f"### 1. Per video, end to end ({len(e2e['videos'])} videos; {paper['backbone']}, {paper['frame_size']} px, "
        f"{paper['rgb_frames']} RGB / {paper['flow_frames']} flow frames)",
        _table(["pipeline", "s / video"], [
            [f"TV-L1 ({e2e['tvl1_pairs_per_video']} frame pairs, {e2e['tvl1_videos']} video(s))", f"{e2e['tvl1_s_per_video']:.2f}"],
            ["optical-flow two-stream model", f"{e2e['optical_flow_model_s']:.3f}"],
            ["**TV-L1 + optical-flow two-stream**", f"{e2e['tvl1_two_stream_s']:.2f}"],
            ["decode + preprocess (in the next row)", f"{e2e['decode_s']:.3f}"],
            ["**representation-flow two-stream, end to end**", f"{e2e['representation_flow_two_stream_s']:.3f}"],
            ["speedup", _x(e2e["speedup"])],
            ["representation-flow two-stream, end to end, bfloat16 (max softmax difference "
             f"{e2e['bfloat16_max_prob_difference']:.1e})", f"{e2e['representation_flow_two_stream_bfloat16_s']:.3f}"],
            ["speedup, bfloat16", _x(e2e["speedup_bfloat16"])],
        ]),
        "",
        "### 2. RepresentationFlow layer vs PyTorch eager (ms)",
    ]
    rows = report["flow_layer"]["rows"]
    parts.append(_table(
        ["batch", "H=W", "T", "C", "iter", "TF fwd", "PyTorch fwd", "speedup", "TF fwd+bwd", "PyTorch fwd+bwd",
         "speedup", "parity (rel.)"],
        [[r["batch"], r["side"], r["frames"], r["channels"], r["iterations"], _ms(r["tf_forward_s"]),
          _ms(r.get("torch_forward_s")), _x(r.get("forward_speedup")), _ms(r["tf_forward_backward_s"]),
          _ms(r.get("torch_forward_backward_s")), _x(r.get("forward_backward_speedup")),
          f"{r['parity_relative_difference']:.1e}" if "parity_relative_difference" in r else "-"] for r in rows]))
    if report["flow_layer"]["torch"] is None:
        from kerasflow.benchmarks.sections import TORCH_MISSING

        parts.append(TORCH_MISSING)
    parts += [
        "",
        f"### 3. FLOP/s: {flops['flops_per_video'] / 1e9:.1f} GFLOP per video in {flops['model_s']:.3f} s = "
        f"{flops['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s; dense {flops['matmul_size']}^2 matmul "
        f"{flops['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s; **{100 * flops['fraction_of_matmul']:.0f} %**",
        _table(["part", "GFLOP", "op time s (profiler)"],
               [[part, f"{v['flops'] / 1e9:.2f}", f"{v['op_s']:.3f}"] for part, v in flops["parts"].items()]),
        "",
        "### 4. Training step and data pipeline (clips/s)",
    ]
    training_rows = [[size, stage, v["batch"], f"{v['step_s']:.3f}", f"{v['clips_per_s']:.2f}"]
                     for size, stages in report["training"].items() for stage, v in stages.items()]
    training_rows += [[size, "data pipeline (RGB + flow clip)", v["batch"], "-", f"{v['clips_per_s']:.2f}"]
                      for size, v in report["pipeline"].items()]
    parts.append(_table(["sizes", "stage", "batch", "s / step", "clips/s"], training_rows))
    export = report["export"]
    parts += ["", "### 5. Export latency (demo sizes, ms per clip)",
              _table(["format", "ms / clip", "Keras ms / clip", "MB"],
                     [[name, f"{v['ms_per_clip']:.1f}", f"{v['keras_ms_per_clip']:.1f}", f"{v['bytes'] / 1e6:.1f}"]
                      for name, v in export.items()]),
              "", "### 6. Peak RSS (MiB, process high-water mark)",
              _table(["after", "MiB"], [["inference", f"{report['memory']['inference_peak_rss_mib']:.0f}"],
                                       ["training steps", f"{report['memory']['training_peak_rss_mib']:.0f}"]]),
              "", "### Targets",
              _table(["target", "at least", "measured", "met"],
                     [[t["what"], t["at_least"], "-" if t["measured"] is None else f"{t['measured']:.2f}",
                       {True: "yes", False: "**no**", None: "-"}[t["met"]]] for t in report["targets"]])]
    return "\n".join(parts)
