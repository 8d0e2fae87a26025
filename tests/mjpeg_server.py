"""Test fixture: serve a video file as an MJPEG-over-HTTP stream on 127.0.0.1, paced at the video's fps.

Run as a separate process (`python tests/mjpeg_server.py VIDEO PORT [--loop]`) so tests can kill it to
simulate a dropped camera. Each client gets the video from the start.
"""

from __future__ import annotations

import http.server
import socketserver
import sys
import time

import cv2


def make_handler(video: str, loop: bool) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            cap = cv2.VideoCapture(video)
            period = 1.0 / (cap.get(cv2.CAP_PROP_FPS) or 10.0)
            next_t = time.monotonic()
            try:
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        if not loop:
                            return
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    jpg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n".encode()
                    self.wfile.write(head + jpg + b"\r\n")
                    next_t += period
                    time.sleep(max(0.0, next_t - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                return
            finally:
                cap.release()

    return Handler


def main() -> None:
    video, port = sys.argv[1], int(sys.argv[2])
    socketserver.ThreadingTCPServer.allow_reuse_address = True  # restartable on the same port (tests)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), make_handler(video, "--loop" in sys.argv))
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
