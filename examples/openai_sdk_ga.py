"""README: the official openai SDK's GA client against `voxwire serve` (a text turn)."""

from openai import OpenAI

from voxwire.demo import local_server

KEY = "example-key-1"

with local_server("--api-key", KEY) as port:
    client = OpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1")
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hello!"}],
            }
        )
        conn.response.create()
        for event in conn:
            if event.type == "response.output_text.delta":
                print(event.delta, end="")
            elif event.type == "response.done":
                print()
                break
