"""The baseline: a bare FastAPI endpoint that reads the body and answers 200."""

from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/webhook/alertmanager")
async def receive(request: Request) -> dict[str, str]:
    await request.body()
    return {"status": "ok"}
