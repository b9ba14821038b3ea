<?php
// A tiny Redis client (RESP2 over fsockopen): the image has no php-redis extension and no Predis.
// Enough for the guestbook: one connection, one command at a time, every reply type.

final class TinyRedis
{
    /** @var resource */
    private $sock;

    public function __construct(string $host, int $port, float $timeout = 2.0)
    {
        $sock = @fsockopen($host, $port, $errno, $errstr, $timeout);
        if ($sock === false) {
            throw new RuntimeException("cannot reach Redis at $host:$port: $errstr ($errno)");
        }
        stream_set_timeout($sock, (int) ceil($timeout));
        $this->sock = $sock;
    }

    public static function fromEnv(): self
    {
        // The localredis variant of the guestbook talks to Redis in the same pod.
        return new self(getenv('REDIS_HOST') ?: 'localhost', (int) (getenv('REDIS_PORT') ?: 6379));
    }

    /** Send one command (every argument a bulk string) and return its decoded reply. */
    public function command(string ...$args)
    {
        $out = '*' . count($args) . "\r\n";
        foreach ($args as $arg) {
            $out .= '$' . strlen($arg) . "\r\n" . $arg . "\r\n";
        }
        while ($out !== '') {
            $written = fwrite($this->sock, $out);
            if ($written === false || $written === 0) {
                throw new RuntimeException('Redis connection closed while writing');
            }
            $out = substr($out, $written);
        }
        return $this->reply();
    }

    private function reply()
    {
        $line = fgets($this->sock);
        if ($line === false || substr($line, -2) !== "\r\n") {
            throw new RuntimeException('Redis connection closed or timed out');
        }
        $kind = $line[0];
        $rest = substr($line, 1, -2);
        switch ($kind) {
            case '+':
                return $rest;
            case '-':
                throw new RuntimeException("Redis error: $rest");
            case ':':
                return (int) $rest;
            case '$':
                return (int) $rest < 0 ? null : substr($this->read((int) $rest + 2), 0, -2);
            case '*':
                if ((int) $rest < 0) {
                    return null;
                }
                $items = [];
                for ($i = 0; $i < (int) $rest; $i++) {
                    $items[] = $this->reply();
                }
                return $items;
        }
        throw new RuntimeException("unexpected Redis reply: $line");
    }

    private function read(int $length): string
    {
        $data = '';
        while (strlen($data) < $length) {
            $chunk = fread($this->sock, $length - strlen($data));
            if ($chunk === false || $chunk === '') {
                throw new RuntimeException('Redis connection closed while reading');
            }
            $data .= $chunk;
        }
        return $data;
    }
}
