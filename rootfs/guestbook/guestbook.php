<?php
// The guestbook front end's API, as kubernetes/examples' guestbook.php: ?cmd=set&key=K&value=V
// stores a value, ?cmd=get&key=K reads it back, both answering JSON.
require_once __DIR__ . '/redis.php';

header('Content-Type: application/json');
$key = $_GET['key'] ?? 'messages';
try {
    $redis = TinyRedis::fromEnv();
    if (($_GET['cmd'] ?? 'get') === 'set') {
        $redis->command('SET', $key, $_GET['value'] ?? '');
        print(json_encode(['message' => 'Updated']) . "\n");
    } else {
        print(json_encode(['data' => (string) $redis->command('GET', $key)]) . "\n");
    }
} catch (RuntimeException $e) {
    http_response_code(503);
    print(json_encode(['error' => $e->getMessage()]) . "\n");
}
