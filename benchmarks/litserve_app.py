"""The LitServe side of benchmarks/serve_vs_litserve.py: a minimal LitServe server around
msinet's own pipeline (decode + preprocess, the int8 engine, map back + PNG), as a LitServe
user would write it. `python benchmarks/litserve_app.py --port 8001 --threads 2`."""

from __future__ import annotations

import argparse

import litserve as ls
from starlette.responses import Response

from msinet.pipeline import Pipeline, load


class MSINetAPI(ls.LitAPI):
    def __init__(self, threads: int | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threads = threads

    def setup(self, device) -> None:
        self.pipeline: Pipeline = load(engine="onnx-int8", threads=self.threads)

    def decode_request(self, request):
        data = request["image"].file.read()
        return self.pipeline.prepare(self.pipeline.decode(data))

    def batch(self, inputs):
        return inputs

    def predict(self, batch):
        maps = self.pipeline.run([x for x, _ in batch])
        return [(m, geometry) for m, (_, geometry) in zip(maps, batch, strict=True)]

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        m, geometry = output
        png = self.pipeline.encode(None, self.pipeline.map_back(m, geometry))
        return Response(content=png, media_type="image/png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--max-batch-size", type=int, default=4)
    ap.add_argument("--batch-timeout", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=1, help="inference processes")
    args = ap.parse_args()
    api = MSINetAPI(args.threads, max_batch_size=args.max_batch_size,
                    batch_timeout=args.batch_timeout)  # fmt: skip
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers)
    server.run(port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
