"""Run by MLServer in the peers venv (benchmarks/peers.py): a small custom runtime serving a
bake's `model.onnx` through onnxruntime over the V2 protocol, the ONNX twin of what
`mlserver-sklearn` serves. One [N, F] tensor in feature order in; out, the ONNX label as
`predict` and, for a classifier, its probabilities as `predict_proba` (what the bake's server
answers too), from one run of the graph on one thread, as the bake's own server runs it.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, NumpyRequestCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    """`parameters.uri` names the ONNX file; its first output is the label, a second one (a
    classifier's) the probabilities."""

    async def load(self) -> bool:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            await get_model_uri(self._settings), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = [output.name for output in self._session.get_outputs()[:2]]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request = self.decode_request(payload, default_codec=NumpyRequestCodec)
        rows = np.asarray(request, dtype=np.float64)
        results = self._session.run(self._outputs, {self._input: rows})
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                NumpyCodec.encode_output(name, result)
                for name, result in zip(("predict", "predict_proba"), results, strict=False)
            ],
        )
