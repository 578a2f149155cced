"""Playground page: chat with a checkpoint next to another model (its base by default), same
prompt, both answers side by side, through the backends evaluation uses (evals.playground).

Loaded models are kept per (workspace, models, backend) with st.cache_resource, so only the
first message pays for loading. `?checkpoint=RUN/step-N` opens the page on that checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from evals.backends import BACKENDS
from evals.playground import Chat, base_of, open_chat
from evals.types import SamplingConfig
from kernel.errors import StudioError
from kernel.store import Store
from studio.ui.compare_data import labeller
from studio.ui.session import call, store, workspace_path
from studio.ui.text import literal
from studio.ui.widgets import header
from training.listing import checkpoint_ids, run_names

HISTORY = "playground_history"   # [{"user": str, "replies": {checkpoint: text}}]
NONE = "(nothing: one model only)"


@st.cache_resource(max_entries=4, show_spinner=False)
def loaded_chat(workspace: str, checkpoints: tuple[str, ...], backend: str) -> Chat:
    """One backend with these models loaded, shared by reruns and sessions."""
    return open_chat(Store(Path(workspace)), list(checkpoints), backend)


def conversation_for(checkpoint: str, history: list[dict], prompt: str,
                     system: str) -> list[dict]:
    """What `checkpoint` sees: the shared user turns with its own earlier answers."""
    messages = [{"role": "system", "content": system}] if system.strip() else []
    for turn in history:
        messages.append({"role": "user", "content": turn["user"]})
        if checkpoint in turn["replies"]:
            messages.append({"role": "assistant", "content": turn["replies"][checkpoint]})
    return messages + [{"role": "user", "content": prompt}]


header("Playground", "Ask a checkpoint and a second model the same thing and read both answers "
       "side by side. Answers come from the same generation backends and chat templates as "
       "evaluation, so what you see here is what an evaluation would score.")

ckpts = checkpoint_ids(store())
if not ckpts:
    st.info("No checkpoints yet: train a run on the Train page (its base model is registered "
            "with it) and come back.", icon=":material/info:")
    st.stop()

wanted = str(st.query_params.get("checkpoint", ""))
runs_first = [c for c in ckpts if not c.startswith("base:")] + [c for c in ckpts
                                                                if c.startswith("base:")]
if wanted and wanted not in runs_first:
    st.warning(f"Checkpoint {literal(wanted)} is not in this workspace; pick another.",
               icon=":material/warning:")
label = labeller(run_names(store()))   # the label every page uses
left, right = st.columns(2)
with left:
    chosen = st.selectbox("Checkpoint", runs_first,
                          index=runs_first.index(wanted) if wanted in runs_first else 0,
                          format_func=label, key="playground_checkpoint")
if chosen != wanted:
    st.query_params["checkpoint"] = chosen   # the URL reproduces the view
ok, base = call("Finding the base model", base_of, store(), chosen)
others = [c for c in runs_first if c != chosen]
if ok and base in others:
    others.remove(base)
    others.insert(0, base)
with right:
    other = st.selectbox("Next to", others + [NONE], format_func=lambda c: c if c == NONE
                         else label(c), key="playground_other",
                         help="By default the base model the checkpoint was trained from.")

with st.expander("Sampling and backend", icon=":material/tune:"):
    cols = st.columns(4)
    max_new = cols[0].number_input("Max new tokens", 1, 4096, 64, key="playground_max_new")
    temperature = cols[1].slider("Temperature", 0.0, 2.0, 0.0, 0.05, key="playground_temp",
                                 help="0 = greedy: the same answer every time.")
    seed = cols[2].number_input("Seed", 0, 2**31 - 1, 0, key="playground_seed")
    backend = cols[3].selectbox("Backend", BACKENDS, key="playground_backend",
                                help="hf starts fast on CPU; vllm serves both models from one "
                                     "engine (needs vLLM installed).")
    system = st.text_area("System message (optional)", "", key="playground_system", height=68)

models = (chosen,) if other == NONE else (chosen, other)
history = st.session_state.setdefault(HISTORY, [])
if st.button("New conversation", icon=":material/restart_alt:", disabled=not history):
    history.clear()
    st.rerun()

prompt = st.chat_input("Message both models")
if prompt:
    try:
        sampling = SamplingConfig(max_new_tokens=int(max_new), temperature=float(temperature),
                                  seed=int(seed))
    except StudioError as exc:
        st.error(f"Sampling: {literal(exc)}", icon=":material/error:")
        sampling = None
    if sampling is not None:
        with st.spinner("Loading models and answering…"):
            ok, chat = call("Loading models", loaded_chat, str(workspace_path()), models, backend)
            replies = {}
            for ckpt in models if ok else ():
                done, got = call(f"Answer from {ckpt}", chat.reply,
                                 conversation_for(ckpt, history, prompt, system), sampling,
                                 checkpoints=[ckpt])
                if done:
                    replies[ckpt] = got[0]
        if replies:
            history.append({"user": prompt, "replies": {c: r.text for c, r in replies.items()},
                            "info": {c: f"{r.n_tokens} tokens · {r.seconds:.2f} s"
                                     for c, r in replies.items()}})

columns = st.columns(len(models))
for col, ckpt in zip(columns, models, strict=True):
    with col:
        st.subheader(label(ckpt), anchor=False)
        st.caption(literal(ckpt))
        for turn in history:
            with st.chat_message("user", avatar=":material/person:"):
                st.text(turn["user"])
            with st.chat_message("assistant", avatar=":material/smart_toy:"):
                if ckpt in turn["replies"]:
                    st.text(turn["replies"][ckpt] or "(empty answer)")
                    st.caption(turn["info"][ckpt])
                else:
                    st.caption("not asked (picked after this turn)")
if not history:
    st.caption("Write a message below; both models answer it.")
