"""What the installed (pinned) LiteLLM knows about OpenAI-compatible providers, as JSON on stdout.

Run with LiteLLM's own interpreter (litellm/.venv/bin/python). Two modes:

  litellm-providers.py facts        every provider of llms/openai_like/providers.json and
                                    constants.openai_compatible_providers: default base URL and the
                                    environment variables LiteLLM reads for its key and base URL
  litellm-providers.py check        reads [{"kind", "prefix", "base_url"}] on stdin and says, for
                                    each, whether LiteLLM knows the prefix and routes
                                    "<prefix>/<model>" to it

The variables are not retyped from LiteLLM's source: they are observed. os.environ is replaced by
a mapping that records every name LiteLLM looks up while it resolves "<provider>/<model>".
"""

import io
import json
import os
import sys
from contextlib import redirect_stdout

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network at import
for name in list(os.environ):
    if name.endswith(("_KEY", "_TOKEN", "_API_BASE", "_BASE_URL")):
        del os.environ[name]

with redirect_stdout(io.StringIO()):
    import litellm
    from litellm.constants import openai_compatible_providers
    from litellm.litellm_core_utils.get_llm_provider_logic import get_llm_provider
    from litellm.llms.openai_like.json_loader import JSONProviderRegistry

JSON_PROVIDERS = json.load(open(os.path.join(os.path.dirname(litellm.__file__), "llms", "openai_like", "providers.json")))

# Providers whose "key" is not a key: an OAuth device login or a model path that is not a model id.
NOT_KEYED = {
    "github_copilot": "signs in with an OAuth device flow, not an API key",
    "chatgpt": "signs in with an OAuth device flow, not an API key",
    "ragflow": "its model names are chat/agent paths, not model ids a /models list returns",
}


class RecordingEnviron(dict):
    """os.environ that remembers which names were asked for."""

    def __init__(self, base):
        super().__init__(base)
        self.asked = []

    def get(self, key, default=None):
        self.asked.append(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.append(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.append(key)
        return super().__contains__(key)


def unique(names):
    seen = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return seen


def resolve(model, **kwargs):
    with redirect_stdout(io.StringIO()):
        return get_llm_provider(model=model, **kwargs)


def facts():
    recorder = RecordingEnviron(os.environ)
    os.environ = recorder
    ids = unique(list(openai_compatible_providers) + sorted(JSON_PROVIDERS))
    providers, excluded = [], []
    for pid in ids:
        if pid in NOT_KEYED:
            excluded.append({"id": pid, "reason": NOT_KEYED[pid]})
            continue
        recorder.asked = []
        try:
            _, provider, _, base = resolve(f"{pid}/some-model")
        except Exception as error:  # LiteLLM cannot route it without more than a key
            excluded.append({"id": pid, "reason": f"LiteLLM does not resolve {pid}/<model>: {str(error).splitlines()[0][:160]}"})
            continue
        if provider != pid:
            excluded.append({"id": pid, "reason": f"LiteLLM routes {pid}/<model> to {provider}"})
            continue
        asked = [n for n in unique(recorder.asked) if n.isupper() and n != "USE_LITELLM_PROXY"]
        keys = [n for n in asked if n.endswith(("_KEY", "_TOKEN")) and not n.startswith("PYDANTIC")]
        if base is None and not keys:
            excluded.append({"id": pid, "reason": "LiteLLM gives neither a default base URL nor a key variable"})
            continue
        providers.append(
            {
                "id": pid,
                "baseUrl": base,
                "keyVariables": keys,
                "keyHeader": key_header(pid),
                "baseUrlVariables": [n for n in asked if n.endswith(("_API_BASE", "_BASE_URL"))],
                "source": "providers.json" if JSONProviderRegistry.exists(pid) else "openai_compatible_providers",
            }
        )
    os.environ = dict(recorder)
    return {
        "litellmVersion": version(),
        "providers": providers,
        "excluded": excluded,
    }


def key_header(pid):
    """The header a providers.json entry sends the key in, when it is not Authorization: Bearer."""
    config = JSON_PROVIDERS.get(pid) or {}
    for header, value in (config.get("headers") or {}).items():
        if value == "{api_key}":
            return header
    return None


def version():
    from importlib.metadata import version as v

    return v("litellm")


def check(kinds):
    known = set(litellm.provider_list)
    out = []
    for kind in kinds:
        prefix = kind["prefix"]
        # JSON-configured providers are loaded at run time and are not in the LlmProviders enum.
        entry = {"kind": kind["kind"], "prefix": prefix, "known": prefix in known or JSONProviderRegistry.exists(prefix)}
        try:
            args = {"api_base": kind["base_url"]} if kind.get("base_url") else {}
            _, provider, _, _ = resolve(f"{prefix}/some-model", **args)
            entry["routesTo"] = provider
        except Exception as error:
            entry["error"] = str(error).splitlines()[0][:200]
        out.append(entry)
    return {"litellmVersion": version(), "providerCount": len(known), "checks": out}


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "facts"
    result = check(json.load(sys.stdin)) if mode == "check" else facts()
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
