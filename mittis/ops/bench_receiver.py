"""`make bench`'s stand-in for a customer's webhook endpoint, in a process of its own."""

import multiprocessing

from django.core.management.base import CommandError


class BenchReceiver:
    """The customer's webhook endpoint: answers 204 to everything, and counts what it received (so the
    pipeline's clock stops without querying the database it measures). It runs in a process of its own on
    asyncio, reading just enough HTTP/1.1 to answer: a customer's endpoint does not run on our cores, so the
    one standing in for it should take as little of them as it can (a threaded `http.server` took a fifth of
    the machine, and shared the GIL with the clock)."""

    def __init__(self):
        context = multiprocessing.get_context("fork")  # the child runs asyncio only, never Django
        self._received, self._delivered = context.RawValue("q", 0), context.RawValue("q", 0)
        port, ready = context.RawValue("i", 0), context.Event()
        self._process = context.Process(target=_receive, args=(port, self._received, self._delivered, ready),
                                        daemon=True)
        self._process.start()
        if not ready.wait(10):
            raise CommandError("The webhook receiver did not start.")
        self.url = f"http://127.0.0.1:{port.value}/hooks"

    @property
    def received(self) -> int:
        return self._received.value

    @property
    def delivered(self) -> int:
        return self._delivered.value

    def stop(self):
        self._process.terminate()
        self._process.join(5)


def _receive(port, received, delivered, ready) -> None:
    import asyncio

    async def answer(reader, writer):
        try:
            while True:  # one kept-alive connection per flush lane
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                received.value += 1  # only this process writes them
                delivered.value += b'"type":"message.delivered"' in body
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve():
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port.value = server.sockets[0].getsockname()[1]
        ready.set()
        await server.serve_forever()

    asyncio.run(serve())
