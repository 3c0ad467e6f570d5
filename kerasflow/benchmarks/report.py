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
    opencv = report["opencv_flow"]
    parts = [
        f"{env['date']} on {env['host']}: CPU {env['cpu']} ({env['cores']} cores, {env['threads']} threads for "
        f"TensorFlow/OpenCV/PyTorch, load {env['load_average_1min']} at start = {env['load_per_core']} per core"
        f"{'' if env['load_per_core'] <= 1 else ': NOT IDLE, other processes were timed too'}); "
        f"TensorFlow {env['tensorflow']}, OpenCV {env['opencv']}, PyTorch {env['torch'] or 'not installed'}, "
        f"GPUs: {', '.join(env['gpus']) or 'none'}"
        + (" -- QUICK (tiny sizes, not a measurement)" if report["quick"] else ""),
        "",
        f"### 1. Per video, end to end ({len(e2e['videos'])} videos; {paper['backbone']}, {paper['frame_size']} px, "
        f"{paper['rgb_frames']} RGB / {paper['flow_frames']} flow frames)",
        _table(["pipeline", "s / video"], [
            [f"TV-L1 ({e2e['tvl1_pairs_per_video']} frame pairs, {e2e['tvl1_videos']} video(s))",
             f"{e2e['tvl1_s_per_video']:.2f}"],
            ["optical-flow two-stream model", f"{e2e['optical_flow_model_s']:.3f}"],
            ["**TV-L1 + optical-flow two-stream**", f"{e2e['tvl1_two_stream_s']:.2f}"],
            ["decode + preprocess (in the next row)", f"{e2e['decode_s']:.3f}"],
            ["**representation-flow two-stream, end to end**", f"{e2e['representation_flow_two_stream_s']:.3f}"],
            ["speedup", _x(e2e["speedup"])],
            ["representation-flow two-stream, end to end, bfloat16 (max softmax difference "
             f"{e2e['bfloat16_max_prob_difference']:.1e})", f"{e2e['representation_flow_two_stream_bfloat16_s']:.3f}"],
            ["speedup, bfloat16", _x(e2e["speedup_bfloat16"])],
        ] + [row for read in e2e["read_pairs"] for row in (
            [f"TV-L1 over only the {read['pairs']} pairs {read['stacks']} test stack(s) read + optical-flow model "
             f"on them ({read['tvl1_read_pairs_s_per_video']:.2f} + {read['optical_flow_model_s']:.3f})",
             f"{read['tvl1_read_pairs_two_stream_s']:.2f}"],
            [f"representation-flow two-stream on {read['stacks']} test clip(s), end to end",
             f"{read['representation_flow_two_stream_s']:.3f}"],
            [f"speedup, read pairs only, {read['stacks']} stack(s)", _x(read["speedup_read_pairs"])])]),
        "",
        f"### 2. RepresentationFlow layer vs OpenCV TV-L1 at identical settings (one scale, one warp, "
        f"tau {opencv['settings']['tau']}, lambda {opencv['settings']['lambda']}, theta {opencv['settings']['theta']}; "
        f"target >= {opencv['target']:.0f}x at every shape on an idle machine; measured at "
        f"{env['load_per_core']} load per core)",
        _table(["frames", "iter", "OpenCV problems", "layer ms", "OpenCV ms", "speedup", "max |du| px"],
               [[f"{r['pairs']} pairs, {r['side']}x{r['side']} x {r['channels']} ch", r["iterations"],
                 r["opencv_problems"], _ms(r["layer_s"]), _ms(r["opencv_s"]), _x(r["speedup"]),
                 f"{r['max_difference_px']:.1e}"] for r in opencv["rows"]]),
        "",
        "### 2b. RepresentationFlow layer vs PyTorch eager (ms; information, not a target)",
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
              "", f"### 7. runtime.jit_compile (XLA): auto uses XLA here: "
              f"{'yes' if report['xla']['auto_uses_xla'] else 'no'} "
              f"(devices: {', '.join(sorted(set(report['xla']['devices'])))}; "
              "auto on TensorFlow = XLA only with a GPU or TPU)",
              _table(["what", "false ms", "true (XLA) ms", "XLA / plain"],
                     [[r["what"], _ms(r["false_s"]), _ms(r["true_s"]), _x(r["xla_vs_plain"])]
                      for r in report["xla"]["rows"]]),
              "", "### Targets",
              _table(["target", "at least", "measured", "met"],
                     [[t["what"], t["at_least"], "-" if t["measured"] is None else f"{t['measured']:.2f}",
                       {True: "yes", False: "**no**", None: "-"}[t["met"]]] for t in report["targets"]])]
    return "\n".join(parts)
