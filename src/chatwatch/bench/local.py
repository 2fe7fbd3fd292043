"""Local chat through chatwatch's model layer vs bare llama-cpp-python, side by side.

Same prompt, settings, seed and identical `Llama` arguments (n_threads included); runs are
interleaved (ABBA order) so machine noise hits both sides alike.
"""

from __future__ import annotations

import statistics
import time

HELP = "tokens/s and TTFT of the local model: chatwatch's model layer vs bare llama-cpp-python"

PROMPT = "Explain in a few sentences why the sky is blue."


def add_arguments(parser) -> None:
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128, dest="max_tokens")
    parser.add_argument("--model", metavar="ID", help="a llama_cpp model id (default: the first one)")


def _bare_run(llm, kwargs) -> tuple[float, float, str]:
    llm.reset()
    t0 = time.perf_counter()
    first = None
    parts = []
    for chunk in llm.create_chat_completion(stream=True, **kwargs):
        piece = chunk["choices"][0]["delta"].get("content")
        if piece:
            if first is None:
                first = time.perf_counter()
            parts.append(piece)
    return first - t0, time.perf_counter() - t0, "".join(parts)


def _layer_run(model, messages, settings) -> tuple[float, float, str, int]:
    t0 = time.perf_counter()
    first = None
    with model.chat(messages, settings, stream=True) as stream:
        for _ in stream:
            if first is None:
                first = time.perf_counter()
        result = stream.result
    return first - t0, time.perf_counter() - t0, result.text, result.usage.output_tokens


def run(args, settings) -> dict:
    import llama_cpp

    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.models.local import LocalLlamaModel

    cfg = settings.model(args.model) if args.model else next(m for m in settings.models if m.kind == "llama_cpp")
    model = LocalLlamaModel(cfg)
    bare = llama_cpp.Llama(**model.llama_kwargs())
    gen = GenerationSettings(temperature=0.7, top_p=0.95, max_tokens=args.max_tokens, seed=42)
    messages = [Message("user", PROMPT)]
    kwargs = dict(
        messages=[m.as_dict() for m in messages],
        temperature=gen.temperature,
        top_p=gen.top_p,
        max_tokens=gen.max_tokens,
        seed=gen.seed,
    )
    print(
        f"model {cfg.id}: {model.path.name}, n_threads={model.n_threads}, runs={args.runs}, max_tokens={args.max_tokens}"
    )
    _layer_run(model, messages, gen)  # warm-up: load and first-call costs out of the figures
    _bare_run(bare, kwargs)
    layer_tps, bare_tps, layer_ttft, bare_ttft = [], [], [], []
    same_text = True
    for i in range(args.runs):
        order = ("layer", "bare") if i % 2 == 0 else ("bare", "layer")
        for side in order:
            if side == "layer":
                ttft, total, text, tokens = _layer_run(model, messages, gen)
                layer_tps.append(tokens / total)
                layer_ttft.append(ttft)
                layer_text, n_tokens = text, tokens
            else:
                ttft, total, text = _bare_run(bare, kwargs)
                bare_total, bare_text = total, text
                bare_ttft.append(ttft)
        # Same seed, fresh cache: both sides sample the same tokens, so one count serves both.
        bare_tps.append(n_tokens / bare_total)
        same_text = same_text and layer_text == bare_text
        print(f"run {i + 1}: chatwatch {layer_tps[-1]:.1f} tok/s, bare {bare_tps[-1]:.1f} tok/s")
    tps, base = statistics.median(layer_tps), statistics.median(bare_tps)
    return {
        "bench": "local",
        "runs": args.runs,
        "output_tokens": n_tokens,
        "same_text": same_text,
        "tokens_per_s": round(tps, 2),
        "baseline_tokens_per_s": round(base, 2),
        "ratio": round(tps / base, 4),
        "ttft_s": round(statistics.median(layer_ttft), 4),
        "baseline_ttft_s": round(statistics.median(bare_ttft), 4),
        "n_threads": model.n_threads,
    }
