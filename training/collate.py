"""Batching: padding-free packing (flattened with per-example position_ids) or right padding.

Why flattening: short instruction rows padded to the longest in a batch waste most of the
compute. With `packing`, a batch of examples becomes ONE row of their concatenation with
`position_ids` restarting at 0 for each example and no attention mask; transformers' Llama-style
models then build a block-diagonal causal mask (sdpa/eager) or use varlen flash attention, so
no token attends across an example boundary (tests check the loss equals the padded one).
The first label of each example is -100 so no token is trained to predict the next example.
"""

from __future__ import annotations

from training.formatting import IGNORE_INDEX


class TokenCounter:
    """Real (non-pad) tokens through the model's training forward passes, for tokens/s.

    A forward pre-hook (not the collator) so eval batches and prefetching do not count.
    """

    def __init__(self) -> None:
        self.tokens = 0

    def attach(self, model) -> TokenCounter:
        def hook(module, args, kwargs):
            if not module.training:
                return
            mask = kwargs.get("attention_mask")
            ids = kwargs.get("input_ids", args[0] if args else None)
            if mask is not None:
                self.tokens += int(mask.sum())
            elif ids is not None:
                self.tokens += int(ids.numel())

        model.register_forward_pre_hook(hook, with_kwargs=True)
        return self


class PackedCollator:
    def __init__(self) -> None:
        from transformers import DataCollatorWithFlattening

        self._flatten = DataCollatorWithFlattening(return_position_ids=True,
                                                   separator_id=IGNORE_INDEX)

    def __call__(self, features: list[dict]) -> dict:
        feats = [{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features]
        return self._flatten(feats, return_tensors="pt")


class PaddedCollator:
    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        n = len(features)
        ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, :k] = torch.tensor(f["input_ids"], dtype=torch.long)
            labels[i, :k] = torch.tensor(f["labels"], dtype=torch.long)
            mask[i, :k] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
