-- A second database on the same server for Model Center's spend ledger.
CREATE DATABASE modelcenter OWNER modelcenter;
