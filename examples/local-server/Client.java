// Fetch the main session's TIP and call identity_whoami over the local identity server.
// Usage: java Client.java [SOCKET]  (Java 16+; default: $IDENTITY_SOCKET or ~/.openclaw/plugins/identity/identity.sock)
import java.io.ByteArrayOutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

public class Client {
    public static void main(String[] args) throws Exception {
        String socket = args.length > 0 ? args[0] : System.getenv("IDENTITY_SOCKET");
        if (socket == null) {
            socket = Path.of(System.getProperty("user.home"), ".openclaw/plugins/identity/identity.sock").toString();
        }
        boolean ok = call(socket, "GET", "/token", null);
        ok = call(socket, "POST", "/tool/identity_whoami", "{\"params\": {}, \"session\": \"\"}") && ok;
        System.exit(ok ? 0 : 1);
    }

    // One request per connection (Connection: close) keeps the HTTP handling minimal.
    static boolean call(String socket, String method, String path, String body) throws Exception {
        byte[] payload = body == null ? new byte[0] : body.getBytes(StandardCharsets.UTF_8);
        String head = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            + (body == null ? "" : "Content-Type: application/json\r\nContent-Length: " + payload.length + "\r\n")
            + "\r\n";
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socket));
            channel.write(ByteBuffer.wrap(head.getBytes(StandardCharsets.US_ASCII)));
            channel.write(ByteBuffer.wrap(payload));
            ByteArrayOutputStream response = new ByteArrayOutputStream();
            ByteBuffer buffer = ByteBuffer.allocate(8192);
            while (channel.read(buffer) > 0) {
                response.write(buffer.array(), 0, buffer.position());
                buffer.clear();
            }
            String text = response.toString(StandardCharsets.UTF_8);
            String status = text.substring(0, text.indexOf("\r\n"));
            String responseBody = text.substring(text.indexOf("\r\n\r\n") + 4);
            System.out.println(method + " " + path + " " + status.split(" ")[1] + " " + responseBody.trim());
            return status.split(" ")[1].equals("200");
        }
    }
}
