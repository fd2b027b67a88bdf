-- Loaded by busted before every spec file (see CMakeLists.txt): makes the
-- project's Lua modules and the spec helpers requirable.
package.path = "./lua/?.lua;./?.lua;./?/init.lua;" .. package.path
