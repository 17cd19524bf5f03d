-- ARGV[1] conn. Returns 1 when it was its user's last conn in the room.
if forget(ARGV[1]) then return 1 end
return 0
