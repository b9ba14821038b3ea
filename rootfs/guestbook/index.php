<?php
// The guestbook page. It checks a full Redis round trip on every view (PING, a SET read back
// with GET, a visit counter) and says so, so `curl localhost` from any container of the pod shows
// whether the front end reaches Redis on localhost:6379.
require_once __DIR__ . '/redis.php';

if (isset($_GET['cmd'])) {
    require __DIR__ . '/guestbook.php';
    exit;
}
try {
    $redis = TinyRedis::fromEnv();
    $pong = $redis->command('PING');
    $token = bin2hex(random_bytes(8));
    $redis->command('SET', 'frontend:roundtrip', $token);
    if ($redis->command('GET', 'frontend:roundtrip') !== $token) {
        throw new RuntimeException('the value read back differs from the value written');
    }
    $visits = $redis->command('INCR', 'frontend:visits');
    $status = "Redis round trip: ok ($pong, visits: $visits)";
    $messages = array_filter(explode(',', (string) $redis->command('GET', 'messages')), 'strlen');
} catch (RuntimeException $e) {
    http_response_code(503);
    $status = 'Redis round trip: failed: ' . $e->getMessage();
    $messages = [];
}
header('Content-Type: text/html; charset=utf-8');
?>
<!DOCTYPE html>
<html>
<head><title>Guestbook</title></head>
<body>
<h1>Guestbook</h1>
<p id="redis"><?= htmlspecialchars($status) ?></p>
<ul>
<?php foreach ($messages as $message): ?>
<li><?= htmlspecialchars($message) ?></li>
<?php endforeach; ?>
</ul>
<form action="/" method="get">
<input type="hidden" name="cmd" value="set"><input type="hidden" name="key" value="messages">
<input name="value" placeholder="messages, comma-separated"><button>Submit</button>
</form>
</body>
</html>
