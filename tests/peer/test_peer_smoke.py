from __future__ import annotations

from tests.peer.client import rms
from tests.peer.conftest import PeerHandle


async def test_text_turn_audio(peer: PeerHandle) -> None:
    c = await peer.connect()
    c.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
        }
    )
    await c.wait_for("session.updated")
    c.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "what is 2 plus 3?"}],
            },
        }
    )
    c.send({"type": "response.create"})
    done = await c.wait_for("response.done")
    await c.wait_for("output_audio_buffer.stopped", within=15)
    print(c.types())
    print(done["response"]["output"])
    print(len(c.received.frames), rms(c.received.all_pcm()))
