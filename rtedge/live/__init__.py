"""GPT-Live on the device: the third provider beside the Realtime calls API (OpenAI, rtAV)."""
