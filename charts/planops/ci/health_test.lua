-- Runs ../health.lua (the Argo CD health check) against the sample objects in
-- health-cases.json and compares the outcome with each case's "expect".
--
-- Usage, from charts/planops:   lua5.4 ci/health_test.lua
--                     or:       lua5.1 ci/health_test.lua   (Argo CD's dialect)
-- Exit status 0 when every case passes, 1 otherwise.

local chart_dir = arg and arg[1] or "."

-- A small JSON decoder (objects, arrays, strings with escapes, numbers,
-- true/false/null) so the runner needs nothing but a Lua interpreter.
-- JSON null becomes nil, as it does for Argo CD's `obj`.
local function decode_json(text)
  local pos = 1

  local function fail(what)
    error(string.format("JSON: %s at byte %d", what, pos), 0)
  end

  local function skip_ws()
    pos = text:find("[^ \t\r\n]", pos) or (#text + 1)
  end

  local value

  local function parse_string()
    pos = pos + 1 -- opening quote
    local parts = {}
    while true do
      local c = text:sub(pos, pos)
      if c == "" then
        fail("unterminated string")
      elseif c == '"' then
        pos = pos + 1
        return table.concat(parts)
      elseif c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if simple[e] then
          parts[#parts + 1] = simple[e]
          pos = pos + 2
        elseif e == "u" then
          local hex = text:sub(pos + 2, pos + 5)
          local code = tonumber(hex, 16)
          if code == nil or #hex ~= 4 then
            fail("bad \\u escape")
          end
          if code < 0x80 then
            parts[#parts + 1] = string.char(code)
          elseif code < 0x800 then
            parts[#parts + 1] = string.char(0xC0 + math.floor(code / 64), 0x80 + code % 64)
          else
            parts[#parts + 1] = string.char(0xE0 + math.floor(code / 4096),
              0x80 + math.floor(code / 64) % 64, 0x80 + code % 64)
          end
          pos = pos + 6
        else
          fail("bad escape")
        end
      else
        local stop = text:find('["\\]', pos) or (#text + 1)
        parts[#parts + 1] = text:sub(pos, stop - 1)
        pos = stop
      end
    end
  end

  local function parse_number()
    local literal = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if literal == nil or literal == "" then
      fail("bad number")
    end
    pos = pos + #literal
    return tonumber(literal)
  end

  local function parse_object()
    pos = pos + 1
    local result = {}
    skip_ws()
    if text:sub(pos, pos) == "}" then
      pos = pos + 1
      return result
    end
    while true do
      skip_ws()
      if text:sub(pos, pos) ~= '"' then
        fail("expected key")
      end
      local key = parse_string()
      skip_ws()
      if text:sub(pos, pos) ~= ":" then
        fail("expected ':'")
      end
      pos = pos + 1
      result[key] = value()
      skip_ws()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "}" then
        return result
      elseif c ~= "," then
        fail("expected ',' or '}'")
      end
    end
  end

  local function parse_array()
    pos = pos + 1
    local result = {}
    local n = 0
    skip_ws()
    if text:sub(pos, pos) == "]" then
      pos = pos + 1
      return result
    end
    while true do
      n = n + 1
      result[n] = value()
      skip_ws()
      local c = text:sub(pos, pos)
      pos = pos + 1
      if c == "]" then
        return result
      elseif c ~= "," then
        fail("expected ',' or ']'")
      end
    end
  end

  value = function()
    skip_ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      return parse_object()
    elseif c == "[" then
      return parse_array()
    elseif c == '"' then
      return parse_string()
    elseif text:sub(pos, pos + 3) == "true" then
      pos = pos + 4
      return true
    elseif text:sub(pos, pos + 4) == "false" then
      pos = pos + 5
      return false
    elseif text:sub(pos, pos + 3) == "null" then
      pos = pos + 4
      return nil
    else
      return parse_number()
    end
  end

  local result = value()
  skip_ws()
  if pos <= #text then
    fail("trailing data")
  end
  return result
end

local function read_file(path)
  local f, err = io.open(path, "r")
  if f == nil then
    error(err, 0)
  end
  local content = f:read("*a")
  f:close()
  return content
end

-- Runs the check the way Argo CD does: a fresh chunk with `obj` as a global.
local function run_check(source, object)
  local env = setmetatable({ obj = object }, { __index = _G })
  local chunk, err
  if setfenv then -- Lua 5.1
    chunk, err = loadstring(source, "health.lua")
    if chunk then
      setfenv(chunk, env)
    end
  else
    chunk, err = load(source, "health.lua", "t", env)
  end
  if chunk == nil then
    error(err, 0)
  end
  return chunk()
end

local valid = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }

local source = read_file(chart_dir .. "/health.lua")
local cases = decode_json(read_file(chart_dir .. "/ci/health-cases.json"))

local failures = 0
for i, case in ipairs(cases) do
  local ok, hs = pcall(run_check, source, case.object)
  local verdict
  if not ok then
    verdict = "error: " .. tostring(hs)
  elseif type(hs) ~= "table" or not valid[hs.status] then
    verdict = "invalid result"
  elseif type(hs.message) ~= "string" or hs.message == "" then
    verdict = "no message"
  elseif hs.status ~= case.expect then
    verdict = "got " .. hs.status .. " (" .. hs.message .. ")"
  end
  if verdict then
    failures = failures + 1
    print(string.format("FAIL %d %s: expected %s, %s", i, case.name, case.expect, verdict))
  else
    print(string.format("ok   %d %s: %s (%s)", i, case.name, hs.status, hs.message))
  end
end

if #cases == 0 then
  print("FAIL no cases")
  os.exit(1)
end
print(string.format("%d cases, %d failed (%s)", #cases, failures, _VERSION))
os.exit(failures == 0 and 0 or 1)
