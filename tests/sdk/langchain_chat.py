"""LangChain's `ChatOpenAI` (package `langchain-openai`) against `colm serve`, unchanged: a
plain call, a streamed one, structured output (a JSON schema), a tool call with the tool's
result sent back, and a conversation with the virtual `colm` model.

Usage: python3 tests/sdk/langchain_chat.py BASE_URL MODEL VIRTUAL_MODEL

Prints one line per check and exits non-zero on the first failure.
"""
import sys

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

base, model, virtual = sys.argv[1], sys.argv[2], sys.argv[3]


def chat(name, **kw):
    return ChatOpenAI(
        model=name, base_url=f"{base}/v1", api_key="unused", max_retries=0, **kw
    )


llm = chat(model, max_tokens=24, temperature=0)
question = "Janet's ducks lay 16 eggs per day. How many eggs do they lay in a week?"
r = llm.invoke(question)
assert isinstance(r, AIMessage) and r.content.strip(), r
assert r.usage_metadata["output_tokens"] >= 1, r.usage_metadata
print("ok: invoke")

streamed = "".join(chunk.content for chunk in llm.stream(question))
assert streamed == r.content, (streamed, r.content)
print("ok: stream")


class Eggs(BaseModel):
    """Eggs laid in a week."""

    eggs_per_week: int = Field(description="the number of eggs")


structured = chat(model, max_tokens=40, temperature=0).with_structured_output(
    Eggs, method="json_schema"
)
eggs = structured.invoke(question + " Answer in JSON.")
assert isinstance(eggs, Eggs), eggs
print("ok: structured output (json_schema)")


@tool
def get_weather(city: str) -> str:
    """The current weather of a city."""
    return '{"temperature_c": 17, "sky": "sunny"}'


with_tools = chat(model, max_tokens=64, temperature=0).bind_tools(
    [get_weather], tool_choice="get_weather"
)
ask = [HumanMessage("What is the weather like in Paris today?")]
call_msg = with_tools.invoke(ask)
assert call_msg.tool_calls, call_msg
call = call_msg.tool_calls[0]
assert call["name"] == "get_weather" and "Paris" in call["args"]["city"], call
print("ok: tool call")

result = get_weather.invoke(call["args"])
answer = chat(model, max_tokens=48, temperature=0).bind_tools([get_weather]).invoke(
    ask + [call_msg, ToolMessage(result, tool_call_id=call["id"])]
)
assert not answer.tool_calls and "17" in answer.content, answer
print("ok: tool result answered")

conversation = [
    SystemMessage("You are a terse assistant."),
    HumanMessage("My name is Zorblax. Please remember it."),
    AIMessage("Nice to meet you, Zorblax."),
    HumanMessage("What is my name? Answer with the name only."),
]
r = chat(virtual, max_tokens=16, temperature=0).invoke(conversation)
assert "Zorblax" in r.content, r
print("ok: conversation with the virtual colm model")
